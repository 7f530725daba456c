"""Showing results to people: rich progress and tables in the terminal, inspection of a dataset directory."""
