"""Generators: document rows to example rows. Importing this package registers the built-in kinds."""

from curate.generate import abstain, extract_json, persona, qa, refusal, summary  # noqa: F401  (registration side effects)
from curate.generate.base import GENERATORS, GenerateContext, Generator, GeneratorConfig, get_generator

__all__ = ["GENERATORS", "GenerateContext", "Generator", "GeneratorConfig", "get_generator"]
