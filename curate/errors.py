"""The one error hierarchy of gristmill. Library code raises these; only the CLI turns them into messages.

    GristmillError                 anything gristmill reports to a person; ``exit_code`` is what the CLI returns (1)
    ├── RecipeError        (2)     the recipe file or an override is wrong (unknown key, bad value, bad YAML)
    ├── InputError         (3)     the input paths match nothing, or an input cannot be used at all
    ├── TemplateError      (4)     a template is missing, its front matter is wrong, or it fails to render
    ├── StageError         (5)     a stage or generator is unknown, or failed on the data
    │   └── LLMError       (5)     an LLM call failed after its retries (or was not retryable)
    │       ├── BudgetExceeded     the run's llm.budget_usd would be passed: no new request is sent
    │       └── InvalidJSON        the answer did not validate against its schema, even after repair turns
    ├── OutputError        (6)     the run directory cannot be written, or a dataset directory is not one
    ├── TrainError         (7)     preflight found a problem, or a model cannot be loaded or trained
    └── EvalGateFailed     (8)     with --strict: a behaviour target was missed, a kind regressed against a
                                   baseline, or the eval's own integrity checks failed (eval.json says which)

Every message says what is wrong, where (file, key path, record), the bad value, and how to fix it.
A malformed *record* is not an error: it becomes a reject envelope and the run goes on; so does an LLM call
that fails for one row (an ``llm_failed`` reject).
"""

from __future__ import annotations


class GristmillError(Exception):
    """Base class; ``exit_code`` is the CLI's exit status for this kind of error."""

    exit_code = 1


class RecipeError(GristmillError):
    exit_code = 2


class InputError(GristmillError):
    exit_code = 3


class TemplateError(GristmillError):
    exit_code = 4


class StageError(GristmillError):
    exit_code = 5


class LLMError(StageError):
    """A call that failed after its retries (or was not retryable)."""


class BudgetExceeded(LLMError):
    """The run's budget would be passed: no new requests are sent."""


class RequestRejected(LLMError):
    """The server refused the request itself (a 4xx, or a 5xx whose body is a request-validation error): sending
    it again cannot help, so it is never retried."""


class InvalidJSON(LLMError):
    """The answer did not validate, even after the repair attempts."""


class OutputError(GristmillError):
    exit_code = 6


class TrainError(GristmillError):
    """Training cannot start or go on: preflight found a problem, or the model cannot be loaded."""

    exit_code = 7


class EvalGateFailed(GristmillError):
    """``--strict``: the evaluation finished and was written, but a target was missed, a kind regressed, or the
    evaluation's integrity checks failed."""

    exit_code = 8
