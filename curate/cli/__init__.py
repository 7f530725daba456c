"""The ``gristmill`` command (click): the data-side commands (data.py), the model-side ones and the one-shot ``run``
(model.py, run.py), progress displays and tables (progress.py). The only place where errors become messages and
exit codes (app.py).

Heavy imports (datasets, torch, transformers, trl) happen inside the commands that need them, so
``gristmill --help`` stays fast; tests/test_cli.py checks that it imports none of torch, transformers, trl.
"""

from curate.cli import data, model  # noqa: F401  (the commands register on the group)
from curate.cli.app import main

__all__ = ["main"]
