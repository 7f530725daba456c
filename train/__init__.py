"""gristmill's model side: fine-tune on a curated dataset directory with TRL, and evaluate the behaviours."""
