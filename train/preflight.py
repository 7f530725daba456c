"""Preflight: what training would see, checked before a single step runs.

For every example it renders the chat template with the assistant mask (the tokens that train) and checks:
the template has ``{% generation %}`` markers; every assistant turn ends with the end-of-turn token and that
token trains (or the model never learns to stop); the dataset has trainable tokens at all (0 is the classic
silent failure); how many examples ``max_length`` would cut and whether any would lose every trained token.
It also estimates memory for the model, LoRA and batch. Problems raise TrainError; the rest is a report.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from curate.errors import TrainError


@dataclass
class Preflight:
    examples: int = 0
    trainable_tokens: int = 0
    lengths: list[int] = field(default_factory=list)
    truncated: int = 0
    max_length: int = 0
    samples: dict[str, str] = field(default_factory=dict)  # kind -> rendered example, trained tokens in [[...]]
    memory_gib: dict[str, float] = field(default_factory=dict)
    template: str = ""

    def rows(self) -> list[tuple[str, str]]:
        q = statistics.quantiles(self.lengths, n=10) if len(self.lengths) > 1 else self.lengths * 9
        return [
            ("chat template", self.template),
            ("examples", str(self.examples)),
            ("trainable tokens", f"{self.trainable_tokens:,}"),
            ("tokens per example p50 / p90 / max", f"{q[4]:.0f} / {q[8]:.0f} / {max(self.lengths)}"),
            (f"truncated at max_length={self.max_length}", f"{self.truncated} ({self.truncated / self.examples:.0%})"),
            *((f"memory estimate: {k}", f"{v:.2f} GiB") for k, v in self.memory_gib.items()),
        ]


def render_masked(tokenizer, ids: list[int], mask: list[int]) -> str:
    """The example's text with trained spans in [[...]]."""
    out, run, trained = [], [], None
    for token, m in zip(ids, mask, strict=True):
        if trained is not None and bool(m) != trained:
            text = tokenizer.decode(run)
            out.append(f"[[{text}]]" if trained else text)
            run = []
        trained = bool(m)
        run.append(token)
    if run:
        text = tokenizer.decode(run)
        out.append(f"[[{text}]]" if trained else text)
    return "".join(out)


def memory_estimate(n_params: int, trainable: int, batch: int, length: int, hidden: int, layers: int, bytes_per: int):
    """Rough GiB: weights, gradients and AdamW states for the trainable part, and activations."""
    gib = 1024**3
    weights = n_params * bytes_per
    optimizer = trainable * (4 + 4 + 4)  # fp32 gradients + two Adam moments
    activations = batch * length * hidden * layers * 34 * bytes_per // 2  # per-layer activations, no checkpointing
    return {"weights": weights / gib, "gradients+optimizer": optimizer / gib, "activations": activations / gib}


def run_preflight(
    tokenizer, dataset, *, max_length: int, kind_column: list[str] | None = None, template: str = ""
) -> Preflight:
    """Check ``dataset`` (rows with ``messages``) as the tokenizer's template renders it. Raises TrainError."""
    from trl.chat_template_utils import has_generation_markers

    if not tokenizer.chat_template or not has_generation_markers(tokenizer.chat_template):
        raise TrainError(
            "the chat template has no {% generation %} markers, so assistant-only loss would train nothing; "
            "use a tokenizer whose template has them, or let gristmill apply its ChatML template"
        )
    eos = tokenizer.eos_token_id
    report = Preflight(max_length=max_length, template=template)
    starved = []
    for i, row in enumerate(dataset):
        out = tokenizer.apply_chat_template(
            row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, mask = out["input_ids"], out["assistant_masks"]
        trained = sum(mask)
        report.examples += 1
        report.trainable_tokens += trained
        report.lengths.append(len(ids))
        if len(ids) > max_length:
            report.truncated += 1
            if trained and not any(mask[:max_length]):
                starved.append(i)
        ends = [j for j in range(len(mask)) if mask[j] and (j + 1 == len(mask) or not mask[j + 1])]
        if trained and any(ids[j] != eos for j in ends):
            raise TrainError(
                f"example {i}: an assistant turn's trained span does not end with the end-of-turn token "
                f"{tokenizer.eos_token!r}; the model would never learn to stop. Fix the chat template."
            )
        kind = kind_column[i] if kind_column else "example"
        if kind not in report.samples:
            report.samples[kind] = render_masked(tokenizer, ids, mask)
    if report.examples == 0:
        raise TrainError("the training split is empty; curate more examples first")
    if report.trainable_tokens == 0:
        raise TrainError(
            "no token of any example is trained (0 trainable tokens): the assistant turns are empty or the "
            "template's generation markers wrap nothing"
        )
    if starved:
        raise TrainError(
            f"{len(starved)} example(s) (first: {starved[0]}) would lose every trained token at max_length="
            f"{max_length}; raise train.sft.max_length or shorten those examples"
        )
    return report
