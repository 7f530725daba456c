"""Invariants as properties (hypothesis): normalization is idempotent, dedup is idempotent and keeps order,
filters never add rows, and chunking never loses a table row."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.executors.memory import run_stage_in_memory
from curate.rows import new_document
from curate.stages import get_stage
from curate.stages.normalize import NormalizeConfig, normalize_text

# Text with the characters normalization cares about: combining marks, odd spaces, controls, fences, newlines.
_pieces = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
    st.sampled_from(["\u0301", "\u00a0", "\u200b", "\ufeff", "\r", "\n", "\t", "  ", "```", "ﬁ", "¨", "\x0c", " #"]),
)
tricky = st.lists(_pieces, max_size=40).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=tricky, form=st.sampled_from(["NFC", "NFKC", "none"]), blank=st.integers(0, 2), collapse=st.booleans())
def test_normalize_is_idempotent(text, form, blank, collapse):
    cfg = NormalizeConfig(unicode_form=form, max_blank_lines=blank, collapse_spaces=collapse)
    once = normalize_text(text, cfg)
    assert normalize_text(once, cfg) == once


def _rows(texts):
    return [
        new_document(doc_id=f"d{i}", ordinal=i, text=t, source="s.md", title="", meta={}) for i, t in enumerate(texts)
    ]


texts = st.lists(st.sampled_from(["a", "b", "a ", "A", "c c", "d"]) | st.text(max_size=8), max_size=30)


@SETTINGS
@given(texts=texts, batch=st.integers(1, 7))
def test_exact_dedupe_is_idempotent_and_keeps_order(texts, batch):
    stage = get_stage("dedupe.exact")
    cfg = stage.config()
    kept, dropped = run_stage_in_memory(stage, cfg, _rows(texts), batch)
    ordinals = [r["ordinal"] for r in kept]
    assert ordinals == sorted(ordinals)
    assert len(kept) + len(dropped) == len(texts)
    assert len({" ".join(r["text"].split()) for r in kept}) == len(kept)
    again, dropped_again = run_stage_in_memory(stage, cfg, kept, batch)
    assert again == kept and dropped_again == []


@SETTINGS
@given(texts=st.lists(st.text(max_size=60), max_size=20), lo=st.integers(0, 6), span=st.integers(0, 10))
def test_filters_never_add_rows(texts, lo, span):
    stage = get_stage("filter.length")
    kept, dropped = run_stage_in_memory(stage, stage.config(min_words=lo, max_words=lo + span or None), _rows(texts))
    assert len(kept) + len(dropped) == len(texts)
    assert {r["id"] for r in kept} <= {r["id"] for r in _rows(texts)}


cells = st.text(alphabet="abcdefgh xyz0123", min_size=1, max_size=12).map(str.strip).filter(bool)


@SETTINGS
@given(rows=st.lists(st.tuples(cells, cells), min_size=1, max_size=40), budget=st.integers(10, 80))
def test_chunking_never_splits_inside_a_table_row(rows, budget):
    table = ["| key | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    text = "# T\n\nSome intro words here.\n\n" + "\n".join(table)
    stage = get_stage("chunk.sections")
    kept, _ = run_stage_in_memory(stage, stage.config(max_words=budget, overlap_words=0), _rows([text]))
    body_lines = [line for c in kept for line in c["text"].split("\n") if line.startswith("| ") and "---" not in line]
    assert [line for line in body_lines if line != "| key | value |"] == table[2:]
