"""Evaluation, as data, a solver and scorers (inspect_ai's split): items (the held-out split, prompt files,
retrieval), generation backends (the model in process, any OpenAI-compatible endpoint), the decline detector,
metrics with intervals, the comparison with every baseline, and the eval.json writer (run.py)."""
