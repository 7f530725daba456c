"""``export/README.md``: the model card (Hugging Face's model-card layout: YAML front matter, then prose): the
base model, the dataset and its card, the eval table with intervals, the licences, the intended use and known
limits, and the commands that serve each exported format."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def _cell(estimate: dict | None) -> str:
    if not estimate:
        return "–"
    return f"{estimate['value']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"


def eval_table(report: dict) -> list[str]:
    tags = list(report.get("models", {}))
    lines = [f"| kind | n | metric | {' | '.join(tags)} |", "|" + " --- |" * (3 + len(tags))]
    for label, row in report.get("kinds", {}).items():
        for metric in row.get("trained", {}):
            cells = [_cell(row.get(tag, {}).get(metric)) for tag in tags]
            lines.append(f"| {label} | {row['n']} | {metric} | {' | '.join(cells)} |")
    return lines


def model_card(
    *,
    name: str,
    run_dir: Path,
    base: str,
    licence: str | None,
    data_licence: str | None,
    files: dict[str, str],  # format -> path relative to export/
    system: str | None,
    eval_report: dict | None,
    training: dict | None,
) -> str:
    front = {"library_name": "transformers", "pipeline_tag": "text-generation", "tags": ["gristmill", "sft"],
             "base_model": base, "license": licence or "other"}  # fmt: skip
    out = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    out += [
        f"Fine-tuned from **{base}** by [gristmill](https://pypi.org/project/gristmill/) on the curated dataset of "
        f"the run `{run_dir.name}`. Licence of the weights: the base model's ({licence or 'see the base model'}); "
        f"licence of the training data: {data_licence or 'not stated in the dataset card; the data owner decides'}.",
        "",
        "## Intended use",
        "",
        "Answering questions about the documents it was trained on, in the persona below, declining the requests "
        "its policy covers and saying when the documents do not cover a question. It is a small model trained on "
        "one organisation's documents: not a general assistant, and not a source of facts beyond them.",
        "",
    ]
    if system:
        out += ["System prompt it was trained with (the Modelfile sets it; send it with every chat request):", "",
                "```", system, "```", ""]  # fmt: skip
    out += ["## Training", ""]
    if training:
        out.append(
            f"{training.get('steps')} steps, {training.get('epochs', 0):.1f} epochs, final training loss "
            f"{training.get('train_loss', float('nan')):.3f}, {int(training.get('tokens') or 0)} tokens; "
            f"LoRA: {'yes, merged into these weights' if training.get('lora') else 'no (full fine-tune)'}. "
            "Settings: `model/training_summary.json` of the run."
        )
    out += ["", "The dataset, its sources, counts and limits: the run's `dataset/README.md` (the dataset card).", ""]
    out += ["## Evaluation", ""]
    if eval_report:
        out += [
            "Held-out prompts of each behaviour, scored by gristmill's detector; each rate with its 95% interval. "
            "`base` is the untouched start, `prompted` the start with the policy in its system prompt.",
            "",
            *eval_table(eval_report),
            "",
        ]
        regressions = eval_report.get("regressions", [])
        if regressions:
            out += ["Regressions (the interval of the difference excludes zero):", ""]
            out += [f"- versus {r['versus']}: {r['label']} {r['metric']} {r['baseline']:.2f} -> {r['trained']:.2f}"
                    for r in regressions]  # fmt: skip
            out.append("")
    else:
        out += ["Not evaluated: run `gristmill eval` on the run, then export again.", ""]
    out += [
        "## Known limits",
        "",
        "- A small model fine-tuned on one organisation's documents: it may state wrong facts fluently, and "
        "questions worded unlike its training data are answered less reliably (see the evaluation above).",
        "- Quantized files (q8_0, q4_k_m) answer almost, not exactly, as the full-precision weights do.",
        "",
        "## Serve it",
        "",
    ]
    commands = {
        "hf": f"vllm serve ./{files.get('hf', 'hf')}  # or transformers' AutoModelForCausalLM.from_pretrained",
        "gguf": f"llama-server -m {files.get('gguf', '')} --jinja  # OpenAI-compatible, http://localhost:8080/v1",
        "ollama": f"ollama create {name} -f {files.get('ollama', '')} && ollama run {name}",
    }
    out += ["```sh", *[commands[f] for f in ("hf", "gguf", "ollama") if f in files], "```", ""]
    out += ["Ask greedily (temperature 0) and without a repeat penalty, as it was evaluated: llama-cpp-python's "
            "server and Ollama penalise repeats by default (1.1), which ends JSON answers early; send "
            "`repeat_penalty: 1.0` (the Modelfile sets it).", ""]  # fmt: skip
    out += [
        "Score a served copy against the trained model: "
        "`gristmill eval RUN --endpoint URL --endpoint-model NAME --no-endpoint-prompted`.",
        "",
    ]
    return "\n".join(out)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
