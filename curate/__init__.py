"""gristmill's data side: read company documents, clean them, and turn them into an instruction dataset."""

__version__ = "0.1.0"
