"""Training throughput: `gristmill train` against a minimal plain TRL script, and packing against no packing.

    python bench/training.py [--steps 20] [--runs 3]

Same curated dataset (the sample recipe's), same model (the tiny model, built once and passed to both as a
local folder), same SFTConfig values. Each measurement is a fresh process; runs alternate between the methods
and the table shows the median over --runs of tokens per CPU second (user + system time of the whole process,
imports and preflight included), and the ratio to the baseline named in the row.
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


def cpu_run(cmd: list[str], **kwargs) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{out.stderr[-3000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from train.tiny import build_tiny

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    gristmill = str(Path(sys.executable).parent / "gristmill")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(
            [gristmill, "curate", str(REPO / "sample_data" / "recipe.yaml"), "--set", f"output.dir={tmp / 'run'}"],
            cwd=REPO, env=env, check=True, capture_output=True,
        )  # fmt: skip
        dataset = tmp / "run" / "dataset"
        model = build_tiny(dataset, tmp / "tiny")
        settings = {
            "max_steps": args.steps,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "assistant_only_loss": True,
            "max_length": 1024,
            "use_cpu": True,
            "bf16": False,
            "gradient_checkpointing": False,
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


if __name__ == "__main__":
    main()
