"""The main job's trials log: curate, train and evaluate the sample recipe with some settings changed, and append
one JSON line per trial to bench/trials.jsonl (settings, examples and tokens, training minutes, every eval number
for the base and the trained model). Whoever tunes the sample recipe next continues from that log.

    python bench/trials.py NAME [--set key=value ...] [--note "why"]
    python bench/trials.py NAME --log-run RUN_DIR [--note "why"]   (a finished `gristmill run`, as it ran)
    python bench/trials.py NAME --from-sft EARLIER --set train.preference.beta=0.1 ...   (DPO on an earlier SFT)
    python bench/trials.py --table [--plot bench/trials.png]

``--set`` takes recipe overrides (``train.sft.num_train_epochs=2``, ``mix.caps.refusal=80``). The run directory is
bench/data/trials/NAME (ignored by git); the base model's generations come from the user cache after the first
trial. ``--from-sft EARLIER`` starts preference tuning from the SFT model of the trial EARLIER, which must have
trained on the same examples with the same SFT settings: the DPO levers (pairs per kind, kinds, beta, learning rate)
cost minutes, not a whole SFT run each. ``--table`` prints the log with the targets, ``--plot`` draws each
behaviour against training minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOG = HERE / "trials.jsonl"
# The behaviour numbers the main job is judged by (metric, kind, higher is better, target).
HEADLINE = [
    ("refusal", "refusal_rate", True, 0.90),
    ("benign_near_miss", "over_refusal_rate", False, 0.10),
    ("extract_json", "valid_json", True, 0.95),
    ("extract_json", "schema_conformance", True, 0.90),
    ("abstain", "abstention_rate", True, 0.80),
    ("qa", "false_abstention_rate", False, 0.10),
    ("qa", "token_f1", True, None),
    ("grounded_abstain", "abstention_rate", True, 0.90),
    ("grounded_qa", "false_abstention_rate", False, 0.10),
    ("grounded_qa", "support", True, 0.80),
]


def reuse_sft(earlier: str, dataset_dir: Path) -> None:
    """Put the trial ``earlier``'s SFT model where this run's preference tuning resumes from (model/sft), after
    checking it trained on the same examples with the same model and SFT settings."""
    import shutil

    from curate.output import dataset_key
    from train.sft import load_train_section, model_layout, training_key

    source = HERE / "data" / "trials" / earlier / "model"
    done = json.loads((source / "training_summary.json").read_text())
    sft = source / "sft" if (source / "sft").is_dir() else source
    section, _ = load_train_section(dataset_dir, [])  # the resolved recipe has the trial's overrides
    earlier_data = HERE / "data" / "trials" / earlier / "dataset"
    if dataset_key(earlier_data) != dataset_key(dataset_dir):
        sys.exit(f"--from-sft {earlier}: it trained on other examples; run the SFT trial again")
    mine = section.model_dump(exclude={"preference", "output_dir"})
    theirs = {**mine, "model": done["model"], "lora": done["lora"]}
    if mine != theirs or any(done["sft"].get(k) != v for k, v in section.sft.items()):
        sys.exit(f"--from-sft {earlier}: its model or SFT settings differ from this trial's")
    layout = model_layout(dataset_dir, section)
    target = layout.model / "sft"
    shutil.rmtree(layout.model, ignore_errors=True)
    shutil.copytree(sft / "final", target / "final")
    if (sft / "final-merged").is_dir():
        shutil.copytree(sft / "final-merged", target / "final-merged")
    summary = {k: v for k, v in done.items() if k != "preference"}
    (target / "training_summary.json").write_text(json.dumps({**summary, "key": training_key(dataset_dir, section)}))


def run_trial(name: str, overrides: list[str], note: str, from_sft: str | None = None) -> dict:
    from curate.pipeline import curate
    from curate.recipe import load_recipe
    from train.eval.run import EvalSettings, default_baseline, evaluate
    from train.sft import train_model

    os.chdir(REPO)
    run = HERE / "data" / "trials" / name
    recipe = load_recipe(REPO / "sample_data" / "recipe.yaml", [*overrides, f"output.dir={run}"])
    start = time.perf_counter()
    curated = curate(recipe)
    curate_s = time.perf_counter() - start
    start = time.perf_counter()
    if from_sft:
        reuse_sft(from_sft, curated.dataset_dir)
    trained = train_model(curated.dataset_dir, [], notify=print, resume=bool(from_sft))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    layout = recipe.layout
    final = layout.trained_model()
    report = evaluate(
        final,
        curated.dataset_dir,
        layout.eval,
        baseline=default_baseline(final),
        settings=EvalSettings(
            max_new_tokens=recipe.eval.max_new_tokens,
            budgets=recipe.eval.budgets,
            batch_size=recipe.eval.batch_size,
            targets=recipe.eval.targets,
            tolerance=recipe.eval.tolerance,
            shots=recipe.eval.prompted.shots,
            threads=recipe.train.threads or 1,
        ),
        baselines=recipe.eval.baselines,
        prompts=[Path(p) for p in recipe.eval.prompts],
    ).report
    eval_s = time.perf_counter() - start
    minutes = {"curate": curate_s / 60, "train": train_s / 60, "eval": eval_s / 60}
    return log_entry(name, note, overrides, curated.dataset_dir, trained.summary, report, minutes)


def log_entry(name, note, overrides, dataset_dir: Path, summary: dict, report: dict, minutes: dict) -> dict:
    """Append one trial to the log: its settings, examples, preflight, training, phase minutes and eval."""
    stats = json.loads((Path(dataset_dir) / "stats.json").read_text())
    entry = {
        "name": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": note,
        "overrides": overrides,
        "train": {"model": summary.get("model"), "lora": summary["lora"], "sft": summary["sft"]},
        "examples": stats["examples"],
        "preflight": dict(summary["preflight"]),
        "training": {
            "steps": summary["steps"],
            "epochs": summary["epochs"],
            "minutes": round(summary["wall_seconds"] / 60, 2),
            "tokens_per_second": summary["tokens_per_second"],
            "final_loss": summary["loss_curve"][-1]["loss"] if summary["loss_curve"] else None,
        },
        "preference": _preference(summary.get("preference")),
        "minutes": {phase: round(value, 2) for phase, value in minutes.items()},
        "eval": report["kinds"],
        "cpu": os.cpu_count(),
    }
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def _preference(section: dict | None) -> dict | None:
    if not section:
        return None
    last = section["curve"][-1] if section["curve"] else {}
    return {
        "pairs": section["pairs"], "dropped_base_declined": section["dropped_base_declined"],
        "beta": section["dpo"]["beta"], "learning_rate": section["dpo"]["learning_rate"], "steps": section["steps"],
        "minutes": round(section["wall_seconds"] / 60, 2), "final_loss": last.get("loss"),
        "final_margin": last.get("margin"), "final_accuracy": last.get("accuracy"),
    }  # fmt: skip


def log_run(run_dir: Path, name: str, note: str) -> dict:
    """Log a finished `gristmill run` (the main job) as a trial, with its phase minutes from report.json."""
    from curate.layout import RunLayout

    layout = RunLayout.of(run_dir / "dataset")
    summary = json.loads(layout.training_summary.read_text())
    report = json.loads((layout.eval / "eval.json").read_text())
    stats = json.loads((layout.dataset / "stats.json").read_text())
    minutes = {"curate": stats["wall_seconds"] / 60, "train": summary["wall_seconds"] / 60,
               "eval": report["wall_seconds"] / 60}  # fmt: skip
    return log_entry(name, note, [], layout.dataset, summary, report, minutes)


def read_log() -> list[dict]:
    return [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()] if LOG.is_file() else []


def print_table(entries: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    headers = [f"{k}\n{m}" + (f"\n{'>=' if up else '<='} {t}" if t else "") for k, m, up, t in HEADLINE]
    table = Table("trial", "train min", *headers, title="trials (trained; base in the first row)")
    if entries:
        first = entries[0]["eval"]
        table.add_row("base", "", *[_cell(first, k, m, "baseline") for k, m, _, _ in HEADLINE])
    for e in entries:
        table.add_row(
            e["name"],
            f"{e['training']['minutes']:.1f}",
            *[_cell(e["eval"], k, m, "trained") for k, m, _, _ in HEADLINE],
        )
    Console(width=220).print(table)


def _cell(kinds: dict, kind: str, metric: str, model: str) -> str:
    row = kinds.get(kind, {})
    value = _value((row.get(model) or row.get("base" if model == "baseline" else model) or {}).get(metric))
    return "" if value is None else f"{value:.2f}"


def _value(metric) -> float | None:
    """A metric as logged: a number (trials before eval.json carried intervals) or {value, low, high, n}."""
    return metric["value"] if isinstance(metric, dict) else metric


def plot(entries: list[dict], path: Path) -> None:
    """Each headline behaviour of every trial against its training minutes, with the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [h for h in HEADLINE if any(h[0] in e["eval"] for e in entries)]
    fig, axes = plt.subplots(2, (len(shown) + 1) // 2, figsize=(3.2 * ((len(shown) + 1) // 2), 6), squeeze=False)
    for ax, (kind, metric, _, target) in zip(axes.flat, shown, strict=False):
        points = [
            (e["training"]["minutes"], _value(e["eval"][kind]["trained"][metric]), e["name"].split("-")[0])
            for e in entries
            if kind in e["eval"]
        ]
        ax.scatter([p[0] for p in points], [p[1] for p in points], color="#4878a8")
        for x, y, label in points:  # which trial is which: the name's first word (t01, t02, ...)
            ax.annotate(label, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6)
        if target is not None:
            ax.axhline(target, color="#c0504d", linestyle="--", linewidth=1)
        ax.set_title(f"{kind}\n{metric}", fontsize=8)
        ax.set_xlabel("training minutes", fontsize=7)
        ax.set_ylim(-0.05, 1.05)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--note", default="")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--from-sft", metavar="EARLIER", help="preference-tune the SFT model of trial EARLIER")
    parser.add_argument("--log-run", type=Path, metavar="RUN_DIR", help="log a finished `gristmill run` as NAME")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    sys.path.insert(0, str(REPO))
    if args.name and args.log_run:
        log_run(args.log_run, args.name, args.note)
    elif args.name:
        run_trial(args.name, args.overrides, args.note, args.from_sft)
    entries = read_log()
    if args.table or args.name:
        print_table(entries)
    if args.plot:
        plot(entries, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
