"""``python -m curate.cli train RUN``: what torchrun and accelerate launch run once per process."""

from curate.cli import main

main()
