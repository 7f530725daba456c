"""Training throughput: `gristmill train` against a plain TRL script, for a full fine-tune and for LoRA.

    python bench/training.py [--model smollm2-135m|tiny] [--steps 8] [--runs 2] [--modes full,lora]
    python bench/training.py --profile {plain,gristmill} [--mode full] [--steps 6]

Same curated dataset (the sample recipe's), same model, same SFTConfig values (the sample recipe's: batch 8,
max_length 640, assistant-only loss; bf16 autocast where the CPU probe allows it and batches grouped by length,
the settings ``gristmill train`` chooses on this machine, given to the plain script too), same torch threads
(2; 1 with the tiny model). The plain script is what a user writes from TRL's documentation: SFTTrainer with
that SFTConfig (and a LoraConfig for LoRA). Each measurement is a fresh process; runs alternate between the
methods, and the table shows the median tokens per second inside ``trainer.train()`` (the tokens TRL counts,
padding excluded) over ``--runs``, and the ratio to the plain script of the same mode. With LoRA a third row is a
raw PyTorch loop (peft, AdamW, the same batches padded to the longest), for scale.

``--profile`` runs one method in this process under torch.profiler and prints the operators by their own CPU
time: where a step's time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}

PLAIN_TRL = """
import json, sys, time
import torch
from datasets import load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
model_dir, data_dir, out_dir, settings, template, lora, threads = sys.argv[1:8]
torch.set_num_threads(int(threads))
tokenizer = AutoTokenizer.from_pretrained(model_dir)
if template != "-":  # a template with {% generation %} markers, which assistant-only loss needs
    tokenizer.chat_template = open(template).read()
model = AutoModelForCausalLM.from_pretrained(model_dir)
peft_config = None
if lora != "-":
    from peft import LoraConfig
    lora = json.loads(lora)
    peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                             target_modules=lora["target_modules"], task_type="CAUSAL_LM")
train = load_from_disk(data_dir)["train"].select_columns(["messages"])
trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=out_dir, **json.loads(settings)), train_dataset=train,
                     processing_class=tokenizer, peft_config=peft_config)
start = time.perf_counter()
trainer.train()
wall = time.perf_counter() - start
print(json.dumps({"tokens": max(h.get("num_tokens", 0) for h in trainer.state.log_history), "wall": wall}))
"""

RAW_LOOP = """
import json, sys, time
import torch
from datasets import load_from_disk
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, data_dir, steps, bf16, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
torch.set_num_threads(int(threads))
torch.manual_seed(13)
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
start = time.perf_counter()
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
print(json.dumps({"tokens": tokens, "wall": time.perf_counter() - start}))
"""


def curate_sample(run: Path, env: dict[str, str]) -> Path:
    """The sample recipe curated into ``run``; its dataset folder."""
    gristmill = str(Path(sys.executable).parent / "gristmill")
    recipe = str(REPO / "sample_data" / "recipe.yaml")
    subprocess.run([gristmill, "curate", recipe, "--set", f"output.dir={run}"], cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return run / "dataset"


def settings_for(model: str, steps: int) -> dict:
    from train.device import cpu_bf16

    tiny = model == "tiny"
    return {
        "max_steps": steps, "per_device_train_batch_size": 8, "learning_rate": 1e-3 if tiny else 1e-4,
        "assistant_only_loss": True, "max_length": 640, "use_cpu": True, "bf16": cpu_bf16() and not tiny,
        "activation_checkpointing": False, "train_sampling_strategy": "group_by_length", "logging_steps": steps,
        "save_strategy": "no", "report_to": [], "disable_tqdm": True, "seed": 13,
    }  # fmt: skip


class Setup:
    """The curated sample, the model folder and the template, in a temporary folder."""

    def __init__(self, tmp: Path, model: str):
        from train.base_models import resolve_model
        from train.chat_template import CHATML_WITH_GENERATION
        from train.tiny import build_tiny

        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
        self.tmp = tmp
        self.dataset = curate_sample(tmp / "run", self.env)
        self.tiny = model == "tiny"
        self.model = build_tiny(self.dataset, tmp / "tiny") if self.tiny else Path(resolve_model(model, print))
        self.template = "-"
        if not self.tiny:  # SmolLM2's own template has no generation markers; gristmill applies the same ChatML one
            self.template = str(tmp / "chatml.jinja")
            Path(self.template).write_text(CHATML_WITH_GENERATION)
        self.threads = 1 if self.tiny else 2

    def gristmill(self, settings: dict, lora: bool) -> tuple[int, float]:
        out = self.tmp / "g"
        sets = [f"model={self.model}", "eval_split=null", f"output_dir={out}", f"threads={self.threads}"]
        sets += [f"lora={json.dumps(LORA)}" if lora else "lora=null"]
        sets += [f"sft.{k}={json.dumps(v)}" for k, v in settings.items()]
        gristmill = str(Path(sys.executable).parent / "gristmill")
        _run([gristmill, "train", str(self.tmp / "run"), *[x for s in sets for x in ("--set", s)]], self.env)
        summary = json.loads((out / "training_summary.json").read_text())
        return summary["tokens"], summary["wall_seconds"]

    def plain(self, settings: dict, lora: bool) -> tuple[int, float]:
        cmd = [sys.executable, "-c", PLAIN_TRL, str(self.model), str(self.dataset / "data"), str(self.tmp / "plain"),
               json.dumps(settings), self.template, json.dumps(LORA) if lora else "-", str(self.threads)]  # fmt: skip
        got = json.loads(_run(cmd, self.env).strip().splitlines()[-1])
        return got["tokens"], got["wall"]

    def raw(self, settings: dict, lora: bool) -> tuple[int, float]:
        cmd = [sys.executable, "-c", RAW_LOOP, str(self.model), str(self.dataset / "data"), str(settings["max_steps"]),
               str(int(settings["bf16"])), str(self.threads)]  # fmt: skip
        got = json.loads(_run(cmd, self.env).strip().splitlines()[-1])
        return got["tokens"], got["wall"]


def _run(cmd: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def compare(args) -> None:
    from rich.console import Console
    from rich.table import Table

    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(Path(tmp), args.model)
        settings = settings_for(args.model, args.steps)
        methods = []
        for mode in modes:
            lora = mode == "lora"
            methods += [
                (mode, "plain TRL script", setup.plain, lora),
                (mode, "gristmill train", setup.gristmill, lora),
            ]
            if lora and not setup.tiny:
                methods.append((mode, "raw PyTorch LoRA loop", setup.raw, lora))
        rates: dict[tuple[str, str], list[float]] = {(m, name): [] for m, name, _, _ in methods}
        for _ in range(args.runs):  # alternate, so drift in machine load hits every method alike
            for mode, name, fn, lora in methods:
                tokens, wall = fn(settings, lora)
                rates[(mode, name)].append(tokens / wall)
    median = {k: statistics.median(v) for k, v in rates.items()}
    table = Table(
        "mode", "method", "tokens/s in train() (median)", "runs", "vs plain TRL",
        title=f"SFT on {args.model}, {args.steps} steps, batch 8, {setup.threads} threads, bf16={settings['bf16']}",
    )  # fmt: skip
    for (mode, name), value in median.items():
        ratio = value / median[(mode, "plain TRL script")]
        table.add_row(mode, name, f"{value:.0f}", " ".join(f"{r:.0f}" for r in rates[(mode, name)]), f"{ratio:.2f}x")
    Console(width=160).print(table)


def profile(args) -> None:
    """One method in process under torch.profiler: operators by self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity

    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(Path(tmp), args.model)
        settings = settings_for(args.model, args.steps)
        lora = args.mode == "lora"
        with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
            if args.profile == "plain":
                sys.argv = ["plain", str(setup.model), str(setup.dataset / "data"), str(setup.tmp / "plain"),
                            json.dumps(settings), setup.template, json.dumps(LORA) if lora else "-",
                            str(setup.threads)]  # fmt: skip
                exec(compile(PLAIN_TRL, "plain_trl", "exec"), {"__name__": "plain_trl"})
            else:
                from train.sft import train_model

                sets = [f"model={setup.model}", "eval_split=null", f"output_dir={setup.tmp / 'g'}",
                        f"threads={setup.threads}", f"lora={json.dumps(LORA)}" if lora else "lora=null"]  # fmt: skip
                train_model(setup.dataset, sets + [f"sft.{k}={json.dumps(v)}" for k, v in settings.items()])
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", choices=["smollm2-135m", "tiny"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modes", default="full,lora")
    parser.add_argument("--profile", choices=["plain", "gristmill"])
    parser.add_argument("--mode", default="full", choices=["full", "lora"], help="with --profile")
    parser.add_argument("--rows", type=int, default=25, help="operators shown with --profile")
    args = parser.parse_args()
    profile(args) if args.profile else compare(args)


if __name__ == "__main__":
    main()
