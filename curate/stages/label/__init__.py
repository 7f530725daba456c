"""The label stages, one module per stage."""
