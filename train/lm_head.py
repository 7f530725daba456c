"""The LM head and the loss on the labelled positions only, on CPU.

TRL's SFTTrainer patches the model (``add_fused_lm_head``) so that ``model(..., fused_lm_head=True)`` returns
per-token log-probabilities, entropy and top-1 hits instead of logits. On CUDA it projects only the positions with
a label; elsewhere it projects every position of the batch, tile by tile over the vocabulary, folds each tile
with torch ops (the top-1 test alone builds a mask the size of the tile), and in the backward pass recomputes each
tile and runs both gradient products in float32, outside autocast.

With assistant-only loss, most positions have no label: on the sample a quarter of the tokens are the assistant's
(the system prompt and the user turn are the rest). Profiled on SmolLM2-135M (vocabulary 49,152), that head was
the largest single cost of a training step. :func:`compact_lm_head` wraps TRL's patched forward: on CPU, it
gathers the hidden states at the labelled positions, projects them in one product (under the caller's autocast,
as the model's own head would), and takes the log-softmax of those rows in float32. It returns the same
``FusedCausalLMOutput`` fields TRL's compute_loss reads, so the loss, the logged entropy and token accuracy are the
same numbers (tests/test_train.py checks the loss and its gradients against the plain path on a fixed batch).

Anything the short path does not cover goes to TRL's forward unchanged: CUDA and other accelerators, soft-capped
or scaled logits, pre-shifted labels (sequence parallelism), mixture-of-experts router losses, a head with a bias.
"""

from __future__ import annotations

import functools
import types
from typing import Any


def compact_lm_head(model: Any) -> bool:
    """Wrap ``model.forward`` (already patched by TRL's ``add_fused_lm_head``) with the labelled-positions-only head
    where it applies; returns whether it did."""
    config = model.config.get_text_config()
    unusual = [
        getattr(config, name, None)
        for name in ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")
    ]  # fmt: skip
    head = model.get_output_embeddings()
    if any(v is not None for v in unusual) or getattr(config, "output_router_logits", False):
        return False
    if head is None or getattr(head, "bias", None) is not None:
        return False
    trl_forward = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        on_cpu = self.get_output_embeddings().weight.device.type == "cpu"
        if not fused_lm_head or shift_labels is not None or labels is None or not on_cpu:
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)  # fmt: skip
        return _labelled_only(self, args, kwargs, labels, num_items_in_batch)

    model.forward = types.MethodType(forward, model)
    return True


def _labelled_only(model, args, kwargs, labels, num_items_in_batch):
    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    kwargs["use_cache"] = False
    hidden = model.base_model(*args, **kwargs).last_hidden_state[:, :-1]
    labels = labels[:, 1:]
    mask = labels != -100
    targets = labels[mask]
    logits = model.get_output_embeddings()(hidden[mask]).float()  # [labelled, vocab]; autocast as the model's own
    log_z = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        entropy = log_z - (probs * logits).sum(-1)
        top1 = logits.argmax(-1) == targets  # the first maximum, as TRL's kernel counts it
        mean_logits = logits.mean(-1)  # DPOTrainer's logits/chosen and logits/rejected

    # masked_scatter keeps an all-unlabelled batch connected to the graph: a differentiable zero, not an error
    def spread(x):
        return x.new_zeros(mask.shape).masked_scatter(mask, x)

    log_probs = spread(picked)
    loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
    return FusedCausalLMOutput(
        loss=loss, log_probs=log_probs, entropy=spread(entropy), log_sum_sq_probs=None,
        mean_logits=spread(mean_logits), is_top1=spread(top1), label_mask=mask, aux_loss=None,
    )  # fmt: skip
