"""Answers with citations and a measured check of each claim (issue 6).

``build_answerer(pipeline, docs, params)`` -> ``Answerer.ask(question)`` -> ``Answer``.
"""

from ragops.answer.answerer import AnswerConfig, Answerer, build_answerer
from ragops.answer.records import Answer, Claim

__all__ = ["Answer", "AnswerConfig", "Answerer", "Claim", "build_answerer"]
