"""Answers with citations and a measured check of each claim (issue 6).

``ragops.answer.answerer.build_answerer(pipeline, docs, params)`` -> ``Answerer.ask(question)`` -> ``Answer``.
Nothing is imported here: a stage that needs only the grounding scorers (the `grounding` stage) must not
depend on the answerer's code (its dvc.yaml deps are its imports, ``ragops.dagdeps``).
"""
