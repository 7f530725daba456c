"""Training throughput: `gristmill train` against a minimal plain TRL script, and packing against no packing.

    python bench/training.py [--steps 20] [--runs 3]
    python bench/training.py --model smollm2-135m [--steps 10] [--runs 2]

Same curated dataset (the sample recipe's), same model, same SFTConfig values. Each measurement is a fresh
process; runs alternate between the methods and the table shows the median over --runs of tokens per CPU
second (user + system time of the whole process, imports and preflight included), and the ratio to the
baseline named in the row.

With the tiny model (built once, passed to both as a local folder), one thread. With ``--model smollm2-135m``
(the converted base from the user cache), LoRA r16 on all linear layers and 2 threads, with the settings
``gristmill train`` chooses on this machine (bf16 autocast where the CPU probe allows it, batches grouped by
length) given to the plain TRL script too; a third row is a raw PyTorch LoRA loop (peft, AdamW, the same
batches of 8 chat-formatted examples padded to the longest), reported for scale. Its tokens are the batch's
non-padding tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

PLAIN_TRL = """
import json, sys
from datasets import load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
import torch
torch.set_num_threads(1)
model_dir, data_dir, out_dir, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
train = load_from_disk(data_dir)["train"].select_columns(["messages"])
trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=out_dir, **settings), train_dataset=train,
                     processing_class=tokenizer)
trainer.train()
print(json.dumps({"tokens": max(h.get("num_tokens", 0) for h in trainer.state.log_history)}))
"""


def curate_sample(run: Path, env: dict[str, str]) -> Path:
    """The sample recipe curated into ``run``; its dataset folder."""
    gristmill = str(Path(sys.executable).parent / "gristmill")
    recipe = str(REPO / "sample_data" / "recipe.yaml")
    subprocess.run([gristmill, "curate", recipe, "--set", f"output.dir={run}"], cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return run / "dataset"


def cpu_run(cmd: list[str], **kwargs) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{out.stderr[-3000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out.stdout


# SmolLM2's own chat template has no {% generation %} markers, so TRL refuses assistant-only loss with it; like
# gristmill, the plain script gives it the ChatML template with markers (the same tokens, 0 added).
PLAIN_TRL_LORA = (
    PLAIN_TRL.replace("torch.set_num_threads(1)", "torch.set_num_threads(2)\nfrom peft import LoraConfig")
    .replace(
        "tokenizer = AutoTokenizer.from_pretrained(model_dir)",
        "tokenizer = AutoTokenizer.from_pretrained(model_dir)\ntokenizer.chat_template = open(sys.argv[5]).read()",
    )
    .replace(
        "processing_class=tokenizer)",
        "processing_class=tokenizer,\n                     peft_config=LoraConfig(r=16, lora_alpha=32, "
        "lora_dropout=0.05, target_modules='all-linear', task_type='CAUSAL_LM'))",
    )
)

RAW_LOOP = """
import json, sys, time
import torch
from datasets import load_from_disk
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(2)
torch.manual_seed(13)
model_dir, data_dir, steps, bf16 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                         task_type="CAUSAL_LM"))
rows = load_from_disk(data_dir)["train"]["messages"]
texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in rows]
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
tokens = 0
model.train()
for step in range(steps):
    batch = texts[(step * 8) % len(texts):][:8]
    enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=640)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**enc, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    tokens += int(enc["attention_mask"].sum())
print(json.dumps({"tokens": tokens}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="tiny", choices=["tiny", "smollm2-135m"])
    args = parser.parse_args()
    if args.model != "tiny":
        return smollm2(args)

    from rich.console import Console
    from rich.table import Table

    from train.tiny import build_tiny

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    gristmill = str(Path(sys.executable).parent / "gristmill")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = curate_sample(tmp / "run", env)
        model = build_tiny(dataset, tmp / "tiny")
        settings = {
            "max_steps": args.steps,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "assistant_only_loss": True,
            "max_length": 1024,
            "use_cpu": True,
            "bf16": False,
            "activation_checkpointing": False,
            "logging_steps": args.steps,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
            "seed": 13,
        }

        def gristmill_run(packing: bool) -> tuple[float, float]:
            out = tmp / f"g-{packing}"
            sets = [f"model={model}", "eval_split=null", f"output_dir={out}", "threads=1"]
            sets += [f"sft.{k}={json.dumps(v)}" for k, v in {**settings, "packing": packing}.items()]
            cmd = [gristmill, "train", str(tmp / "run"), *[x for s in sets for x in ("--set", s)]]
            cpu, _ = cpu_run(cmd, env=env)
            tokens = json.loads((out / "training_summary.json").read_text())["tokens"]
            return tokens, cpu

        def plain_run() -> tuple[float, float]:
            cmd = [
                sys.executable,
                "-c",
                PLAIN_TRL,
                str(model),
                str(dataset / "data"),
                str(tmp / "plain"),
                json.dumps(settings),
            ]
            cpu, stdout = cpu_run(cmd, env=env)
            return json.loads(stdout.strip().splitlines()[-1])["tokens"], cpu

        rates: dict[str, list[float]] = {"plain TRL script": [], "gristmill train": [], "gristmill train, packing": []}
        for _ in range(args.runs):  # alternate, so drift in machine load hits every method alike
            for name, fn in (
                ("plain TRL script", plain_run),
                ("gristmill train", lambda: gristmill_run(False)),
                ("gristmill train, packing", lambda: gristmill_run(True)),
            ):
                tokens, cpu = fn()
                rates[name].append(tokens / cpu)
    median = {k: statistics.median(v) for k, v in rates.items()}
    table = Table(
        "method", "tokens per CPU s (median)", "runs", "vs plain TRL", "vs gristmill, no packing",
        title=f"SFT on the tiny model, {args.steps} steps, batch 8, 1 thread",
    )  # fmt: skip
    for name, value in median.items():
        table.add_row(
            name,
            f"{value:.0f}",
            " ".join(f"{r:.0f}" for r in rates[name]),
            f"{value / median['plain TRL script']:.3f}x",
            f"{value / median['gristmill train']:.3f}x",
        )
    Console(width=140).print(table)


def smollm2(args) -> None:
    from rich.console import Console
    from rich.table import Table

    from train.base_models import resolve_model
    from train.chat_template import CHATML_WITH_GENERATION
    from train.device import cpu_bf16

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    gristmill = str(Path(sys.executable).parent / "gristmill")
    model = resolve_model(args.model, print)
    bf16 = cpu_bf16()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = curate_sample(tmp / "run", env)
        template = tmp / "chatml.jinja"
        template.write_text(CHATML_WITH_GENERATION)
        settings = {
            "max_steps": args.steps, "per_device_train_batch_size": 8, "learning_rate": 5e-4,
            "assistant_only_loss": True, "max_length": 640, "use_cpu": True, "bf16": bf16,
            "activation_checkpointing": False, "train_sampling_strategy": "group_by_length",
            "logging_steps": args.steps, "save_strategy": "no", "report_to": [], "disable_tqdm": True, "seed": 13,
        }  # fmt: skip

        def gristmill_run() -> tuple[float, float]:
            out = tmp / "g"
            sets = [f"model={model}", "eval_split=null", f"output_dir={out}", "threads=2",
                    "lora={r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}"]  # fmt: skip
            sets += [f"sft.{k}={json.dumps(v)}" for k, v in settings.items()]
            cpu, _ = cpu_run([gristmill, "train", str(tmp / "run"), *[x for s in sets for x in ("--set", s)]], env=env)
            return json.loads((out / "training_summary.json").read_text())["tokens"], cpu

        def plain_run() -> tuple[float, float]:
            cmd = [sys.executable, "-c", PLAIN_TRL_LORA, str(model), str(dataset / "data"), str(tmp / "plain"),
                   json.dumps(settings), str(template)]  # fmt: skip
            cpu, stdout = cpu_run(cmd, env=env)
            return json.loads(stdout.strip().splitlines()[-1])["tokens"], cpu

        def raw_run() -> tuple[float, float]:
            cmd = [sys.executable, "-c", RAW_LOOP, str(model), str(dataset / "data"), str(args.steps), str(int(bf16))]
            cpu, stdout = cpu_run(cmd, env=env)
            return json.loads(stdout.strip().splitlines()[-1])["tokens"], cpu

        methods = {"plain TRL script (LoRA)": plain_run, "gristmill train (LoRA)": gristmill_run,
                   "raw PyTorch LoRA loop": raw_run}  # fmt: skip
        rates: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.runs):  # alternate, so drift in machine load hits every method alike
            for name, fn in methods.items():
                tokens, cpu = fn()
                rates[name].append(tokens / cpu)
    median = {k: statistics.median(v) for k, v in rates.items()}
    table = Table(
        "method", "tokens per CPU s (median)", "runs", "vs plain TRL",
        title=f"SFT on SmolLM2-135M, LoRA r16 all-linear, {args.steps} steps, batch 8, 2 threads, bf16={bf16}",
    )  # fmt: skip
    for name, value in median.items():
        ratio = f"{value / median['plain TRL script (LoRA)']:.3f}x"
        table.add_row(name, f"{value:.0f}", " ".join(f"{r:.0f}" for r in rates[name]), ratio)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
