"""Stages: the registry, each built-in stage's behaviour, and output independent of batch size."""

from __future__ import annotations

import json

import pytest

from curate.errors import StageError
from curate.executors.memory import run_stage_in_memory
from curate.rows import REJECT_DETAIL, REJECT_REASON, new_document
from curate.stages import all_stages, get_stage
from curate.stages.chunk import ChunkConfig
from curate.stages.normalize import NormalizeConfig, normalize_text
from tests.conftest import require


def docs(*texts: str, ids: list[str] | None = None) -> list[dict]:
    return [
        new_document(doc_id=(ids[i] if ids else f"d{i}"), ordinal=i, text=t, source=f"d{i}.md", title=f"T{i}", meta={})
        for i, t in enumerate(texts)
    ]


def run(name: str, rows: list[dict], batch_size: int = 256, **config):
    stage = get_stage(name)
    return run_stage_in_memory(stage, stage.config(**config), rows, batch_size)


def test_registry_lists_versions_and_suggests_names():
    refs = {s.ref for s in all_stages()}
    assert {"normalize.text@2", "dedupe.exact@1", "chunk.sections@1", "filter.length@1"} <= refs
    with pytest.raises(StageError, match=r"Did you mean dedupe\.exact"):
        get_stage("dedupe.exakt")
    with pytest.raises(StageError, match="no version 9"):
        get_stage("normalize.text", 9)
    assert all(s.summary for s in all_stages()), "every stage documents itself"


def test_normalize_text_rules():
    cfg = NormalizeConfig()
    raw = "Cafe\u0301  menu\u200b\r\n\r\n\r\n\r\nline\x07 two   \n```\nx  =  1   \n```\n\u00a0\u00a0indented  text"
    assert normalize_text(raw, cfg) == "Café menu\n\nline two\n```\nx  =  1\n```\n  indented text"
    assert normalize_text("a\n\n\n\nb", NormalizeConfig(max_blank_lines=0)) == "a\nb"
    assert normalize_text("ﬁne", NormalizeConfig(unicode_form="NFKC")) == "fine"
    assert normalize_text("ﬁne", cfg) == "ﬁne"


def test_normalize_rejects_rows_left_empty():
    kept, dropped = run("normalize.text", docs("fine", "\u200b\u200b  \n"))
    assert [r["id"] for r in kept] == ["d0#0"]
    assert dropped[0][REJECT_REASON] == "empty_after_normalize"


def test_exact_dedupe_keeps_first_by_ordinal_and_names_it():
    rows = docs("same text", "other", "same  text", "SAME TEXT")
    rows = [rows[2], rows[0], rows[3], rows[1]]  # arrival order must not matter
    kept, dropped = run("dedupe.exact", rows)
    assert sorted(r["id"] for r in kept) == ["d0#0", "d1#0", "d3#0"]
    assert [(r["id"], r[REJECT_REASON]) for r in dropped] == [("d2#0", "exact_duplicate_of:d0#0")]
    kept, dropped = run("dedupe.exact", rows, lowercase=True)
    assert sorted(r["id"] for r in dropped) == ["d2#0", "d3#0"]


def test_exact_dedupe_boilerplate_drops_every_copy():
    rows = docs("footer", "footer", "unique", "footer")
    kept, dropped = run("dedupe.exact", rows, boilerplate_min_docs=3)
    assert [r["id"] for r in kept] == ["d2#0"]
    assert {r[REJECT_REASON] for r in dropped} == {"boilerplate"}
    assert "3 documents" in dropped[0][REJECT_DETAIL]


def test_filter_length():
    kept, dropped = run(
        "filter.length", docs("one two", "one two three four", "a b c d e f g"), min_words=3, max_words=5
    )
    assert [r["id"] for r in kept] == ["d1#0"]
    assert [(r[REJECT_REASON], r[REJECT_DETAIL]) for r in dropped] == [
        ("too_short", "2 words, below min_words=3"),
        ("too_long", "7 words, above max_words=5"),
    ]
    with pytest.raises(ValueError, match="raise max_words"):
        get_stage("filter.length").config(min_words=10, max_words=5)


MANUAL = """# Tent Manual

Intro paragraph about the tent.

## Setup

### Site

Pick flat ground.

## Parts

| Part | Qty |
| --- | --- |
| Pole | 2 |
| Stake | 10 |

```
fold  the  poles
```
"""


def test_chunk_sections_heading_paths_and_ids():
    kept, dropped = run("chunk.sections", docs(MANUAL), max_words=200, overlap_words=10)
    assert not dropped
    assert [(r["id"], r["section"]) for r in kept] == [
        ("d0#0", "Tent Manual"),
        ("d0#1", "Tent Manual > Setup > Site"),
        ("d0#2", "Tent Manual > Parts"),
    ]
    assert "```\nfold  the  poles\n```" in kept[2]["text"]
    assert json.loads(kept[1]["meta"])["chunk"] == {"index": 1, "count": 3, "words": 3}


def test_chunk_splits_long_tables_between_rows_with_header():
    rows = "\n".join(f"| item {i} | {i} units of gear |" for i in range(40))
    text = f"# Inventory\n\n| Item | Amount |\n| --- | --- |\n{rows}\n"
    kept, _ = run("chunk.sections", docs(text), max_words=60, overlap_words=0)
    assert len(kept) > 1
    seen = []
    for chunk in kept:
        lines = chunk["text"].split("\n")
        assert lines[:2] == ["| Item | Amount |", "| --- | --- |"]
        assert all(line.startswith("| item ") and line.endswith("units of gear |") for line in lines[2:])
        seen += lines[2:]
    assert seen == rows.split("\n")  # every row exactly once, in order


def test_chunk_never_cuts_a_code_block_and_overlaps_prose():
    code = "```\n" + "\n".join(f"step {i} do the thing" for i in range(60)) + "\n```"
    prose = " ".join(f"Sentence number {i} is here." for i in range(60))
    kept, _ = run("chunk.sections", docs(f"# Doc\n\n{prose}\n\n{code}"), max_words=100, overlap_words=12)
    assert sum(code in c["text"] for c in kept) == 1
    assert all(c["text"].count("```") in (0, 2) for c in kept)
    prose_chunks = [c["text"] for c in kept if "```" not in c["text"]]
    assert len(prose_chunks) >= 2
    assert "\n\n" not in prose_chunks[0], "sentences of one paragraph stay one paragraph"
    tail = prose_chunks[0].split(". ")[-2:]  # the last two sentences (12 words)
    assert prose_chunks[1].startswith(". ".join(tail)), "consecutive chunks share trailing sentences"
    assert all(len(c.split()) <= 100 for c in prose_chunks)


def test_chunk_only_headings_is_rejected_and_config_is_checked():
    _, dropped = run("chunk.sections", docs("# A\n## B\n"))
    assert dropped[0][REJECT_REASON] == "no_content"
    with pytest.raises(ValueError, match="lower overlap_words"):
        ChunkConfig(max_words=50, overlap_words=50)


def test_chunk_footer_after_rule_is_its_own_chunk():
    kept, _ = run("chunk.sections", docs("# Doc\n\nBody text.\n\n---\n© 2026 Acme"))
    assert [c["text"] for c in kept] == ["Body text.", "© 2026 Acme"]


CORPUS = [
    MANUAL,
    "plain text without headings " * 30,
    MANUAL,
    "# FAQ\n\n## Q?\n\nAnswer.\n\n---\nfooter",
    "   ",
    "short",
    "# FAQ\n\n## Q?\n\nAnswer.\n\n---\nfooter",
]


# Stages whose defaults are not a complete config.
EXAMPLE_CONFIGS = {"select.threshold": {"rules": [{"field": "signals.quality.words", "op": ">=", "value": 3}]}}


@pytest.mark.parametrize("stage", all_stages(), ids=lambda s: s.ref)
@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_every_stage_output_is_independent_of_batch_size(stage, batch_size, request):
    llm = None
    if stage.uses_llm:  # an LLM stage answers from the loopback server; its answers depend only on the row
        from tests.conftest import label_answer

        llm = request.getfixturevalue("llm_runtime")
        request.getfixturevalue("fake_openai").responder = label_answer
    rows = docs(*CORPUS)
    if stage.name == "select.threshold":  # give it signals to select on
        quality = get_stage("filter.quality")
        rows, _ = run_stage_in_memory(quality, quality.config(profile="company_docs"), rows)
    config = stage.config(**EXAMPLE_CONFIGS.get(stage.name, {}))
    assert run_stage_in_memory(stage, config, rows, batch_size, llm) == run_stage_in_memory(
        stage, config, rows, 1000, llm
    )


@pytest.fixture(scope="module")
def local_tokenizer(tmp_path_factory):
    """A byte-level BPE tokenizer trained here on a few sentences and saved like any hub tokenizer."""
    require("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [MANUAL, "Sentence number one is here. Another sentence follows it."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]))
    path = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(str(path))
    return str(path)


def test_chunk_budget_in_tokens_with_a_local_tokenizer(local_tokenizer):
    from transformers import AutoTokenizer

    counter = AutoTokenizer.from_pretrained(local_tokenizer)
    prose = " ".join(f"Sentence number {i} is here." for i in range(60))
    kept, _ = run(
        "chunk.sections", docs(f"# Doc\n\n{prose}"), tokenizer=local_tokenizer, max_tokens=50, overlap_tokens=8
    )
    assert len(kept) > 3
    for row in kept:
        info = json.loads(row["meta"])["chunk"]
        assert info["tokens"] == len(counter(row["text"], add_special_tokens=False)["input_ids"]) <= 50
    words_only, _ = run("chunk.sections", docs(f"# Doc\n\n{prose}"), max_words=50, overlap_words=8)
    assert len(words_only) != len(kept)  # tokens, not words, were counted


def test_chunk_tokenizer_that_cannot_load_is_a_clear_error(tmp_path):
    with pytest.raises(StageError, match=r"cannot load tokenizer .* give a local tokenizer folder"):
        run("chunk.sections", docs("# A\n\ntext here"), tokenizer=str(tmp_path / "no-such-tokenizer"))
