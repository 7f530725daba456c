"""The dedupe stages, one module per stage."""
