"""The filter stages, one module per stage."""
