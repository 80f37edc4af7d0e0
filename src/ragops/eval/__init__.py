"""Evaluation: metrics (pure), evaluating retrieval modes, plots, and the judgments they are scored on (the
judgments files, generated "silver" questions)."""
