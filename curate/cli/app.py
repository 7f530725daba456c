"""The ``gristmill`` click group, the console, and the one place where errors become messages and exit codes."""

from __future__ import annotations

import functools
import sys

import click

from curate import __version__
from curate.errors import GristmillError

SET_HELP = (
    "Override a recipe value (repeatable): its full path (train.sft.max_steps=20), or the short form where one "
    "section alone has the key (sft.max_steps=20)."
)


def make_console(stderr: bool = False):
    """A rich console; written to a log (not a terminal, no COLUMNS), 140 columns wide rather than rich's 80, so
    the result tables keep their words whole."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, highlight=False, width=140 if wide else None)


def handle_errors(fn):
    """Turn a GristmillError into one readable message on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GristmillError as err:
            make_console(stderr=True).print(f"[bold red]error:[/] {err}", markup=True, soft_wrap=True)
            sys.exit(err.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gristmill")
def main() -> None:
    """gristmill: company documents in, a curated instruction-tuning dataset and a fine-tuned model out.

    \b
    The whole path:
      gristmill init DOCS_DIR        write recipe.yaml and a starter guardrails.yaml to fill in
      gristmill run recipe.yaml      curate, fine-tune and evaluate, each phase resumable
      gristmill inspect RUN          the data: counts, drops, examples (gristmill report RUN: one HTML page)
      gristmill review RUN           accept, reject and edit examples in the browser (applied by mix.review)
      gristmill chat RUN             talk to the model (chat RUN --base: the model before training)
      gristmill export RUN           for vLLM (hf/), llama.cpp (a GGUF) and Ollama (a Modelfile), checked

    \b
    One phase at a time: gristmill curate recipe.yaml, gristmill train RUN, gristmill eval RUN.
    RUN is a run directory (the recipe's output.dir); its dataset/ folder works too.
    """
