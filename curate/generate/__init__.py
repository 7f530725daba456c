"""Generators: document rows to example rows. Importing this package registers the built-in kinds."""

from curate.generate import extract_json, grounded, persona, qa, summary  # noqa: F401  (registration side effects)
from curate.generate.base import GENERATORS, GenerateContext, Generator, GeneratorConfig, get_generator
from curate.generate.policy import abstain, near_miss, refusal  # noqa: F401  (registration side effects)

__all__ = ["GENERATORS", "GenerateContext", "Generator", "GeneratorConfig", "get_generator"]
