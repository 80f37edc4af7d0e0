"""The ``ragops`` command: the typer app in ``main`` (the console script ``ragops.cli.main:app``), one module
per command group beside it."""
