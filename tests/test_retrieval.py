"""curate/retrieval.py: BM25 through bm25s (the scores, min_match, ranking), and the --retrieve prompt."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from curate.retrieval import Retriever, SectionIndex, terms

ROWS = [
    {"id": "a", "title": "Returns", "section": "Returns > Refund window", "text": "Refunds take 5 to 10 days."},
    {"id": "b", "title": "Shipping", "section": "Shipping > Express", "text": "Express orders ship the same day."},
    {"id": "c", "title": "Tents", "section": "Tents > Wind", "text": "Stake the windward corners first in wind."},
    {"id": "d", "title": "Returns", "section": "Returns > Damaged", "text": "Damaged items get a free refund label."},
]


def lucene_bm25(rows, query, k1=1.2, b=0.75):
    """BM25 as Lucene (8 and later) scores it, written out: the oracle for bm25s's numbers. Lucene dropped the
    constant (k1 + 1) factor of the textbook formula; rankings are the same."""
    docs = [Counter(terms(f"{r['title']} {r['section']} {r['text']}")) for r in rows]
    avg = sum(sum(d.values()) for d in docs) / len(docs)
    q = list(dict.fromkeys(terms(query)))
    out = []
    for d in docs:
        length, total = sum(d.values()), 0.0
        for w in q:
            df = sum(w in x for x in docs)
            if d[w]:
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                total += idf * d[w] / (d[w] + k1 * (1 - b + b * length / avg))
        out.append(total)
    return out


@pytest.mark.parametrize("query", ["refund days", "wind tent corners", "express shipping refund", "nothing matches"])
def test_scores_are_lucene_bm25(query):
    _, scores = SectionIndex(ROWS).scores(query)
    assert scores == pytest.approx(lucene_bm25(ROWS, query), rel=1e-5)


def test_search_ranks_and_best_keeps_min_match():
    index = SectionIndex(ROWS)
    hits = index.search("How long does a refund take?", 3)
    assert [h.row["id"] for h in hits][:2] == ["a", "d"] and [h.rank for h in hits] == [1, 2]
    assert all(h.score > 0 for h in hits)
    assert index.search("", 3) == [] and index.search("zebra", 3) == []
    # best: the top row holding at least min_match of the query's words.
    assert index.best("refund window days", 0.5)["id"] == "a"
    assert index.best("refund zebra giraffe lion", 0.5) is None  # 1 of 4 words: below min_match
    assert index.best("refund zebra giraffe lion", 0.25)["id"] in {"a", "d"}
    assert SectionIndex([]).best("refund", 0.5) is None and SectionIndex([]).search("refund", 2) == []


def test_retriever_writes_the_grounded_prompt_and_names_what_it_showed(sample_run):
    result, _ = sample_run
    retriever = Retriever(result.dataset_dir, k=2)
    found = retriever("How many days do I have to return an item?")
    assert len(found.shown) == 2 and found.ranked[:2] == found.shown and len(found.ranked) >= 3
    assert found.user.startswith("Answer from these documentation excerpts")
    assert "[1] " in found.user and "[2] " in found.user and "[3] " not in found.user
    assert found.user.rstrip().endswith("Question: How many days do I have to return an item?")
    documents = {
        json.loads(line)["id"]: json.loads(line)
        for line in (result.dataset_dir / "documents" / "documents.jsonl").read_text().splitlines()
    }
    assert "return" in (documents[found.shown[0]]["text"] + documents[found.shown[0]]["section"]).lower()


def test_retriever_needs_the_documents(tmp_path):
    from curate.errors import InputError

    with pytest.raises(InputError, match=r"no documents/documents\.jsonl"):
        Retriever(tmp_path)


def test_terms_are_unicode_words_stemmed_in_the_rows_language():
    """Before: "refunds" did not find "A refund is issued.", and a Japanese section had no terms at all."""
    assert terms("Rückgabe", "de") == terms("Rückgaben", "de") and terms("Rückgabe", "de") != []
    assert terms("refunds") == terms("refund") == ["refund"]
    assert terms("返品は30日以内", "ja") == ["30", "返品", "品は", "日以", "以内"]
    rows = [
        {"id": "en", "title": "Money back", "section": "", "text": "A refund is issued.",
         "labels": '{"language": "en"}'},
        {"id": "de", "title": "Rückgaben", "section": "", "text": "Die Rückgabe ist kostenlos.",
         "labels": '{"language": "de"}'},
        {"id": "ja", "title": "返品", "section": "", "text": "返品は30日以内です。", "labels": '{"language": "ja"}'},
        {"id": "tents", "title": "Tents", "section": "", "text": "Stake the corners.", "labels": "{}"},
    ]  # fmt: skip
    index = SectionIndex(rows)
    assert [h.row["id"] for h in index.search("refunds", 3)] == ["en"]
    assert [h.row["id"] for h in index.search("Wie funktionieren Rückgaben?", 3)][:1] == ["de"]
    assert [h.row["id"] for h in index.search("返品の期限は？", 3)] == ["ja"]


def test_a_templates_dir_that_does_not_exist_is_an_error_not_another_prompt(sample_run, tmp_path):
    import shutil

    import yaml

    from curate.errors import TemplateError

    result, _ = sample_run
    copy = tmp_path / "dataset"
    shutil.copytree(result.dataset_dir / "documents", copy / "documents")
    resolved = yaml.safe_load((result.dataset_dir / "recipe.resolved.yaml").read_text())
    resolved.setdefault("templates", {})["dirs"] = [str(tmp_path / "my-templates")]
    (copy / "recipe.resolved.yaml").write_text(yaml.safe_dump(resolved))
    with pytest.raises(TemplateError, match=r"my-templates.*do not exist"):
        Retriever(copy)
    (tmp_path / "my-templates").mkdir()
    Retriever(copy)


def test_an_excerpt_keeps_a_table_a_table_within_its_budget():
    """Before: the excerpt was the text's sentences joined on one line, so a quoted table lost its rows."""
    from curate.retrieval import excerpt

    table = "| Plan | Price |\n| --- | --- |\n" + "".join(f"| Plan {n} | {n} USD a month |\n" for n in range(40))
    cut = excerpt({"text": "Our plans.\n\n" + table}, 40)
    assert cut.startswith("Our plans.\n\n| Plan | Price |\n| --- | --- |\n| Plan 0 | 0 USD a month |\n")
    assert len(cut.split()) <= 40 and "| Plan 39 |" not in cut
    giant = excerpt({"text": "| A | B |\n| --- | --- |\n| x | " + "word " * 500 + "|"}, 80)
    assert giant.startswith("| A | B |\n| --- | --- |\n| x | word") and len(giant.split()) <= 90
