"""How far the decline judges agree with people, on the held-out part of the labelled fixtures (the part never
looked at while the rules were written): XSTest v2's human-labelled completions of five chat models, and
SmolLM2-135M-Instruct outputs of the sample's eval labelled by hand (tests/fixtures/detector/).

Judges: the offline rules (train/eval/detector.py, the default) and, with --base-url and --model, the LLM judge
of ``eval.judge: llm`` (curate/llm/judge.py, the prompt.judge_decline rubric) at any OpenAI-compatible endpoint;
its answers are cached in bench/data/judge_cache.sqlite, so a second run sends nothing.

    python bench/detector_agreement.py
    python bench/detector_agreement.py --base-url http://127.0.0.1:8080/v1 --model smollm2 [--limit 200]

XSTest does not tell refusing from abstaining, so both count as its "refusal" there; its "partial refusal" is
the detector's partial (a decline, then help anyway).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

from train.eval.detector import Detector, Verdict

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "detector"
SAMPLE_BEHAVIOURS = json.loads((FIXTURES / "sample_behaviours.json").read_text())


def rows(name: str, limit: int | None) -> list[dict]:
    out = [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]
    out = [r for r in out if r["part"] == "heldout"]
    return out[:limit] if limit else out


def scores(labelled: list[dict], verdicts: list[Verdict], collapse: dict[str, str]) -> dict:
    pairs = [(r["label"], collapse.get(v.label, v.label)) for r, v in zip(labelled, verdicts, strict=True)]
    counts = Counter(pairs)
    out = {"n": len(pairs), "agreement": sum(a == b for a, b in pairs) / len(pairs)}
    for outcome in sorted({a for a, _ in pairs}):
        predicted = sum(v for (_, b), v in counts.items() if b == outcome)
        actual = sum(v for (a, _), v in counts.items() if a == outcome)
        out[outcome] = (counts[(outcome, outcome)] / max(predicted, 1), counts[(outcome, outcome)] / max(actual, 1))
    return out


def llm_verdicts(args, labelled: list[dict]) -> list[Verdict]:
    from curate.llm.judge import judge_answers
    from curate.llm.runtime import open_runtime
    from curate.recipe import LLMSection
    from curate.templating import load_templates

    os.environ.setdefault(args.api_key_env, "not-checked")
    settings = LLMSection(base_url=args.base_url, model=args.model, api_key_env=args.api_key_env,
                          max_concurrency=args.concurrency, json_mode=args.json_mode, max_tokens=96)  # fmt: skip
    templates = load_templates()
    (HERE / "data").mkdir(exist_ok=True)
    with open_runtime(settings, HERE / "data" / "judge_cache.sqlite", 0, templates) as runtime:
        got = judge_answers(runtime, templates, [(r["prompt"], r["output"]) for r in labelled])
    rules = Detector()
    return [
        Verdict(g["outcome"], partial=bool(g.get("partial"))) if isinstance(g, dict) else rules(r["output"])
        for r, g in zip(labelled, got, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--json-mode", default="object_schema")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="First N held-out rows of each fixture.")
    args = parser.parse_args()
    sets = [
        ("XSTest v2 (5 chat models)", "xstest.jsonl", Detector(), {"refused": "declined", "abstained": "declined"}),
        ("SmolLM2-135M (sample eval)", "smollm2.jsonl", Detector.from_behaviours(SAMPLE_BEHAVIOURS), {}),
    ]
    print(f"{'fixture (held-out part)':30} {'judge':12} {'n':>5} {'agree':>6}  per outcome (precision / recall)")
    for title, name, rules, collapse in sets:
        labelled = rows(name, args.limit)
        judges = [("rules", [rules(r["output"]) for r in labelled])]
        if args.base_url:
            judges.append((f"llm {args.model}", llm_verdicts(args, labelled)))
        for judge, verdicts in judges:
            s = scores(labelled, verdicts, collapse)
            per = "  ".join(f"{k} {v[0]:.2f}/{v[1]:.2f}" for k, v in s.items() if isinstance(v, tuple))
            print(f"{title:30} {judge:12} {s['n']:>5} {s['agreement']:>6.3f}  {per}")


if __name__ == "__main__":
    main()
