"""`ragops ingest` (issue 16): a folder of your own documents becomes the BEIR-layout corpus the DAG reads.
``formats`` turns one file (PDF, DOCX, HTML, Markdown, text, JSONL) into plain text that remembers its pages
and headings, or a :class:`~ragops.ingest.formats.ConversionError` that says in one line why not; ``worker``
runs those conversions in long-lived worker processes with a per-file time limit, so one hanging or crashing
file costs its own line in the manifest and nothing else; ``corpus`` walks the folder, re-uses unchanged
conversions and writes the corpus atomically. Nothing here imports torch: workers start in a fraction of a second.
"""
