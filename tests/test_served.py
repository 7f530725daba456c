"""The exported model inside llama.cpp itself (llama-cpp-python): the same tokens and next-token logits as the
HF folder, a q4_k_m quantized by llama.cpp, the served q8_0 behaving as the trained model under
`gristmill eval --endpoint`, and the served model labelling the next round's documents.

Marked ``llama_server`` (``.ci/run`` installs the ``serve`` extra and runs ``pytest -m llama_server``). The
served-behaviour and labelling tests use the README's main job (``runs/acme-support``, SmolLM2 fine-tuned, with
the sample recipe's q8_0 export): ``.ci/run`` runs it first; elsewhere set GRISTMILL_MAIN_RUN or run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, require, write
from tests.llama_server import LlamaServer

pytestmark = pytest.mark.llama_server
KEY_ENV = "GRISTMILL_LLAMA_KEY"
MAIN_RUN = Path(os.environ.get("GRISTMILL_MAIN_RUN") or REPO / "runs" / "acme-support")
F16_LOGIT_BOUND = 0.25  # f16 GGUF vs float32 HF: measured below 0.05 on SmolLM2 (logits spanning ~30)


@pytest.fixture(scope="module")
def main_run() -> Path:
    require("llama_cpp")
    if not (MAIN_RUN / "export" / "gguf" / "model-q8_0.gguf").is_file():
        message = f"no exported main job at {MAIN_RUN}: run `gristmill run sample_data/recipe.yaml` first"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return MAIN_RUN


@pytest.fixture(scope="module")
def tiny_export(trained, sample_run, tmp_path_factory) -> Path:
    from train.export import export_run

    require("llama_cpp")
    result, _ = sample_run
    root = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(result.dataset_dir, root / "dataset")
    shutil.copytree(trained.final_dir, root / "model" / "final")
    export_run(root, ["hf", "gguf"], "f16")
    return root / "export"


def _check_logits(export: Path, f16: Path) -> dict:
    from train.export.check import compare_logits, compare_tokens

    assert compare_tokens(export / "hf", f16) == []  # llama.cpp tokenizes text and chat prompts as training did
    report = compare_logits(export / "hf", f16)
    assert report["top1_agreement"] == 1.0, report
    assert report["max_abs_diff"] <= F16_LOGIT_BOUND, report
    return report


def test_the_f16_gguf_gives_the_hf_logits_in_llama_cpp(tiny_export):
    _check_logits(tiny_export, tiny_export / "gguf" / "model-f16.gguf")


def test_the_main_jobs_f16_gguf_gives_the_hf_logits_in_llama_cpp(main_run, tmp_path):
    from train.export import check_read_back
    from train.export.gguf import write_gguf
    from train.export.hf import HFExport

    summary = json.loads((main_run / "export" / "export.json").read_text())
    back = summary["checks"]["gguf_read_back"]
    f16 = write_gguf(main_run / "export" / "hf", tmp_path / "model-f16.gguf", "f16", name="acme",
                     add_bos=back["add_bos_token"], end_ids=[back["eos_token_id"]])  # fmt: skip
    check_read_back(f16, HFExport(main_run / "export" / "hf", None, [("", back["eos_token_id"])], False))
    report = _check_logits(main_run / "export", f16)
    print(f"\nSmolLM2 f16 GGUF vs HF: top-1 {report['top1_agreement']:.2f}, max |diff| {report['max_abs_diff']:.4f}")


def test_q4_k_m_is_quantized_by_llama_cpp_and_answers(tiny_export, tmp_path):
    from llama_cpp import Llama

    from train.export import export_run
    from train.export.gguf import read_back

    run = tiny_export.parent
    export_run(run, ["gguf"], "q4_k_m")
    path = run / "export" / "gguf" / "model-q4_k_m.gguf"
    back = read_back(path)
    assert back["eos_token_id"] == back["eot_token_id"] and back["chat_template"]
    assert any(t.startswith("Q") for t in back["types"]), back["types"]
    llm = Llama(model_path=str(path), n_ctx=256, verbose=False, n_threads=2)
    assert llm.tokenize(b"<|im_end|>", add_bos=False, special=True) == [back["eos_token_id"]]
    llm("Hello", max_tokens=4)  # it loads and generates


def _paired(generations: Path, a: str, b: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """{(kind label, metric): [(a's score, b's score) per item]} for the 0/1 behaviour metrics."""
    by: dict[str, dict[str, dict]] = {}
    for line in generations.read_text().splitlines():
        row = json.loads(line)
        by.setdefault(row["id"], {})[row["model"]] = row
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for pair in by.values():
        x, y = pair[a], pair[b]
        label = x["kind"] + (" (prompts)" if x["origin"] == "prompts" else "")
        for metric, value in x["scores"].items():
            out.setdefault((label, metric), []).append((value, y["scores"].get(metric)))
    return {k: v for k, v in out.items() if all(x in (0, 1) and y in (0, 1) for x, y in v)}


def mcnemar_p(pairs: list[tuple[float, float]]) -> float:
    """McNemar's exact test: the two-sided binomial p-value of the items that changed one way against the other."""
    from math import comb

    up, down = sum(1 for x, y in pairs if x < y), sum(1 for x, y in pairs if x > y)
    n, k = up + down, min(up, down)
    return 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def served_differences(report: dict, generations: Path, served: str) -> tuple[float, list]:
    """(the share of items whose detector label is the same, the rates that differ): a behaviour rate differs when
    it is more than 0.05 from the trained model's, outside either 95% interval, and McNemar's exact test on the
    paired items says the changes lean one way (p < 0.05)."""
    labels: dict[str, dict[str, str]] = {}
    for line in generations.read_text().splitlines():
        row = json.loads(line)
        labels.setdefault(row["id"], {})[row["model"]] = row["label"]
    agree = sum(v["trained"] == v[served] for v in labels.values()) / len(labels)
    far = []
    for (label, metric), pairs in _paired(generations, "trained", served).items():
        t, s = report["kinds"][label]["trained"][metric], report["kinds"][label][served][metric]
        inside = t["low"] <= s["value"] <= t["high"] and s["low"] <= t["value"] <= s["high"]
        p = mcnemar_p(pairs)
        if abs(t["value"] - s["value"]) > 0.05 and not inside and p < 0.05:
            far.append((label, metric, round(t["value"], 3), round(s["value"], 3), round(p, 4)))
    return agree, far


def test_the_served_check_fails_on_a_model_that_lost_its_training(main_run):
    """Planted: the untouched base in the served model's place (an export that lost the fine-tune) fails the
    check that the served q8_0 passes (measured: labels agree on 0.41 of items, 12 rates differ)."""
    report = json.loads((main_run / "eval" / "eval.json").read_text())
    agree, far = served_differences(report, main_run / "eval" / "generations.jsonl", "base")
    assert agree < 0.9 and far


def test_mcnemar_tells_a_lean_from_noise():
    assert mcnemar_p([(1, 0)] * 2 + [(1, 1)] * 10) == 0.5  # two flips of twelve: noise
    assert mcnemar_p([(1, 0)] * 8 + [(0, 0)] * 4) < 0.01  # eight flips one way: a real change
    assert mcnemar_p([(1, 0)] * 4 + [(0, 1)] * 4) == 1.0


def test_the_served_q8_0_export_behaves_as_the_trained_model(main_run, tmp_path):
    """`gristmill eval RUN --endpoint` on llama.cpp serving the exported q8_0 GGUF (its own chat template, its own
    end token), on the held-out split and the red-team prompts: the detector labels the same answers alike, and
    every behaviour rate is within 0.05 of the in-process trained model's, or inside both 95% intervals, or its
    changes lean no way (served_differences)."""
    run = tmp_path / "run"
    shutil.copytree(main_run / "dataset", run / "dataset")
    (run / "model").mkdir(parents=True)
    (run / "model" / "final").symlink_to(main_run / "model" / "final")
    if (main_run / "eval" / "cache").is_dir():  # the trained model's answers, so only the server generates
        shutil.copytree(main_run / "eval" / "cache", run / "eval" / "cache")
    server = LlamaServer(main_run / "export" / "gguf" / "model-q8_0.gguf", tmp_path / "server.log", alias="acme",
                         chat_format=None)  # fmt: skip
    server.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "curate.cli", "eval", str(run), "--baseline", "none", "--endpoint",
             server.base_url, "--endpoint-model", "acme", "--no-endpoint-prompted", "--api-key-env", KEY_ENV,
             "--endpoint-body", '{"repeat_penalty": 1.0}'],  # llama-cpp-python's server penalises by default
            capture_output=True, text=True, timeout=3000, cwd=REPO, env={**os.environ, KEY_ENV: "not-checked"},
        )  # fmt: skip
    finally:
        server.kill()
    assert out.returncode == 0, out.stderr[-3000:]
    print(out.stdout[-6000:])
    report = json.loads((run / "eval" / "eval.json").read_text())
    assert list(report["models"]) == ["trained", "acme"]
    agree, far = served_differences(report, run / "eval" / "generations.jsonl", "acme")
    print(f"served q8_0 vs in-process: detector labels agree on {agree:.3f} of items; differing rates: {far}")
    assert agree >= 0.9, agree  # measured 0.94 (q8_0 weights, and in-process bf16 autocast on AVX-512-BF16 CPUs)
    assert not far, far


def test_the_served_model_labels_the_next_round(main_run, tmp_path):
    """A recipe's llm.base_url pointed at the served fine-tuned model: label.llm labels documents through it."""
    server = LlamaServer(main_run / "export" / "gguf" / "model-q8_0.gguf", tmp_path / "server.log", alias="acme",
                         chat_format=None)  # fmt: skip
    server.start()
    try:
        for name, text in {
            "returns.md": "# Returns\n\n## Window\n\nYou can return most items within 60 days of delivery. Items "
            "must be clean and unused. Refunds go back to the original payment method within ten days.\n",
            "tents.md": "# Tents\n\n## Pitching\n\nStake the four corners first and pull each corner taut. Clip "
            "the inner tent to the poles and throw the rain fly over the top before the rain starts.\n",
        }.items():
            write(tmp_path / "docs" / name, text)
        recipe = {
            "name": "next-round",
            "input": {"paths": [str(tmp_path / "docs")]},
            "stages": [{"use": "chunk.sections"}, {"use": "label.llm", "with": {"topics": ["returns", "tents"]}}],
            "llm": {"base_url": server.base_url, "model": "acme", "api_key_env": KEY_ENV, "max_tokens": 200,
                    "timeout_s": 120, "max_retries": 1, "json_mode": "object_schema", "max_failure_ratio": 0.5},
            "output": {"dir": str(tmp_path / "run")},
        }  # fmt: skip
        write(tmp_path / "recipe.yaml", json.dumps(recipe))
        out = subprocess.run([sys.executable, "-m", "curate.cli", "curate", str(tmp_path / "recipe.yaml")],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path,
                             env={**os.environ, KEY_ENV: "not-checked"})  # fmt: skip
    finally:
        server.kill()
    assert out.returncode == 0, out.stderr[-3000:]
    docs = [json.loads(line) for line in (tmp_path / "run" / "dataset" / "documents" / "documents.jsonl").open()]
    labels = [json.loads(d["labels"]).get("llm") for d in docs]
    assert docs and all(labels), labels  # llama.cpp holds json_object to the schema: every row labelled
    assert all(label["topic"] in ("returns", "tents", "other") and label["model"] == "acme" for label in labels)
