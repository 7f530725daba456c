"""filter.quality: each rule on a crafted positive and negative; signals on every row; profiles; labels; select."""

from __future__ import annotations

import json

import pytest

from curate.executors.memory import run_stage_in_memory
from curate.rows import REJECT_REASON, new_document
from curate.stages import get_stage
from curate.stages.filter.quality import WEB, QualityConfig

PROSE = (
    "The tent is easy to pitch and it keeps the rain out. We tested it with a group of hikers over three weekends. "
    "Each of them said that the poles were light and that the fly was quick to attach. "
    "The floor stayed dry even in heavy rain, and the vents kept condensation low at night. "
    "Packing it away takes a few minutes, and the stuff sack has room to spare for the stakes. "
    "Overall it is a good choice for people who want a light shelter with a simple setup."
)


def row(text: str) -> dict:
    return new_document(doc_id="d", ordinal=0, text=text, source="s", title="", meta={})


def verdict(text: str, **config) -> str:
    stage = get_stage("filter.quality")
    _, dropped = run_stage_in_memory(stage, stage.config(**config), [row(text)])
    return dropped[0][REJECT_REASON] if dropped else ""


def test_clean_prose_passes_every_web_rule():
    assert verdict(PROSE) == ""


TWO_WORD_LINES = "\n".join(" ".join(PROSE.split()[i : i + 2]) for i in range(0, len(PROSE.split()), 2))
# (reason, text, config): later rules get earlier ones disabled, since the first failing rule is the reason.
CASES = [
    ("gopher_too_few_words", "Short text with the words and of to.", {}),
    ("gopher_short_words", " ".join(["a b c de of to the and"] * 10) + " " + PROSE[:40], {}),
    ("gopher_long_words", " ".join(["incomprehensibilities characteristically the and"] * 20), {}),
    ("gopher_symbol_ratio", PROSE + " #tag #tent #rain #hike #camp #gear #fun #wow #yes #go " * 3, {}),
    ("gopher_ellipsis_lines", "\n".join([PROSE] + ["and then the rest of it is to be seen..."] * 4), {}),
    ("gopher_alpha_words", PROSE + " " + " ".join(str(1_000_000 + i) for i in range(300)), {}),
    ("gopher_stop_words", " ".join(["Tent poles stakes rain fly vents floor pack camping hiking"] * 6), {}),
    ("gopher_dup_lines", "\n".join([PROSE] + ["Buy now and save on the tent."] * 6), {}),
    ("gopher_top_2_gram", PROSE + " the tent" * 40, {}),
    ("gopher_dup_5_gram", PROSE + (" the tent is light and the fly is quick" * 12), {"disable": ["top_n_grams"]}),
    ("c4_lorem_ipsum", PROSE + " Lorem ipsum dolor sit amet.", {}),
    ("c4_curly_bracket", PROSE + ' Set {"config": true} in the file.', {}),
    ("c4_too_few_sentences", PROSE.replace(". ", ", and "), {}),
    (
        "fineweb_newline_ratio",
        TWO_WORD_LINES,
        {"disable": ["fineweb_line_punct_ratio", "fineweb_short_line_ratio", "c4_min_sentences"]},
    ),
    ("fineweb_short_lines", TWO_WORD_LINES, {"disable": ["fineweb_line_punct_ratio", "c4_min_sentences"]}),
    ("fineweb_line_punct", TWO_WORD_LINES, {"disable": ["c4_min_sentences"]}),
]


@pytest.mark.parametrize(("reason", "text", "config"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_fires_on_its_positive(reason, text, config):
    assert verdict(text, **config) == reason
    # ...and not when that rule is switched off (the negative for the same text).
    rule = {
        "gopher_too_few_words": "min_doc_words",
        "gopher_short_words": "min_avg_word_length",
        "gopher_long_words": "max_avg_word_length",
        "gopher_symbol_ratio": "max_symbol_word_ratio",
        "gopher_ellipsis_lines": "max_ellipsis_lines_ratio",
        "gopher_alpha_words": "min_alpha_words_ratio",
        "gopher_stop_words": "min_stop_words",
        "gopher_dup_lines": "dup_line_frac",
        "gopher_top_2_gram": "top_n_grams",
        "gopher_dup_5_gram": "dup_n_grams",
        "c4_lorem_ipsum": "c4_lorem_ipsum",
        "c4_curly_bracket": "c4_curly_bracket",
        "c4_too_few_sentences": "c4_min_sentences",
        "fineweb_newline_ratio": "fineweb_newline_ratio",
        "fineweb_short_lines": "fineweb_short_line_ratio",
        "fineweb_line_punct": "fineweb_line_punct_ratio",
    }[reason]
    assert verdict(text, disable=[*config.get("disable", []), rule]) != reason


def test_c4_rules_look_at_the_lines_c4_keeps():
    from curate.stages.filter.quality import first_failure, measure

    # As C4 (and datatrove): a '{' on a line C4 drops anyway (no terminal punctuation) is not a curly-bracket
    # drop, and lines about cookies or terms of use, or mentioning javascript, do not count as sentences.
    code = PROSE + '\n{"config": true}'
    assert verdict(code) == ""
    policy = "\n".join(
        [
            "This site uses cookies to improve your visit. Read our privacy policy. We use cookies a lot.",
            "By using it you accept our terms of use. They change. Read them often.",
            "Enable JavaScript to see the map. Then reload the page. Then wait a while.",
        ]
    )
    quality = measure(policy)
    assert quality["policy_lines"] == 2 and quality["sentences"] == 0
    assert first_failure(quality, {**{key: None for key in WEB}, "c4_min_sentences": 5})[0] == "c4_too_few_sentences"


def test_words_are_tokens_as_spacy_splits_them():
    from curate.stages.filter.quality import tokens

    text = "Don't re-use the U.S. plan (see docs/api.html) -- it's 3.5x faster... What?! Mail a@b.io at 10:30."
    assert tokens(text) == [
        "Do",
        "n't",
        "re",
        "-",
        "use",
        "the",
        "U.S.",
        "plan",
        "(",
        "see",
        "docs",
        "/",
        "api.html",
        ")",
        "--",
        "it",
        "'s",
        "3.5x",
        "faster",
        "...",
        "What",
        "?",
        "!",
        "Mail",
        "a@b.io",
        "at",
        "10:30",
        ".",
    ]


def test_comparisons_are_strict_as_published():
    from curate.stages.filter.quality import first_failure, measure

    # Exactly at a threshold is kept: FineWeb drops below 0.12 lines ending a sentence, not at it.
    m = measure(PROSE)
    off = {key: None for key in WEB}
    at = {**off, "fineweb_line_punct_ratio": m["line_punct_ratio"], "fineweb_short_line_ratio": m["short_line_ratio"]}
    assert first_failure(m, at) is None
    assert first_failure(m, {**off, "fineweb_short_line_ratio": m["short_line_ratio"] - 0.01})[0] == (
        "fineweb_short_lines"
    )


def test_rules_can_be_disabled_and_overridden():
    text = PROSE + " Lorem ipsum dolor sit amet."
    assert verdict(text, disable=["c4_lorem_ipsum"]) == ""
    assert verdict("Short text with the words and of to.", min_doc_words=3) != "gopher_too_few_words"
    with pytest.raises(ValueError, match="unknown rules"):
        QualityConfig(disable=["gopher_nope"])


def test_company_docs_profile_keeps_faq_answers_tables_and_code():
    faq = "Select Forgot password on the sign-in page. The link expires after 30 minutes."
    table = "| Size | Chest (cm) |\n| --- | --- |\n| S | 89-96 |\n| M | 96-104 |\n| L | 104-112 |"
    api = 'Send the key in the header.\n\n```json\n{"sku": "TH2-GRN", "available": 42}\n```'
    for text in (faq, table, api):
        assert verdict(text) != "", "the web profile drops it"
        assert verdict(text, profile="company_docs") == "", text
    assert verdict(PROSE + " Lorem ipsum dolor.", profile="company_docs") == "c4_lorem_ipsum"


def test_signals_are_written_on_kept_and_dropped_rows():
    stage = get_stage("filter.quality")
    kept, dropped = run_stage_in_memory(stage, stage.config(), [row(PROSE), row("too short")])
    for r in kept + dropped:
        quality = json.loads(r["signals"])["quality"]
        assert set(quality) >= {"words", "avg_word_length", "stop_words", "dup_n_grams", "line_punct_ratio"}
    assert json.loads(kept[0]["signals"])["quality"]["words"] == len(PROSE.split())


def test_every_published_threshold_is_a_field():
    assert set(WEB) <= set(QualityConfig.model_fields)


def test_labels():
    stage = get_stage("label.heuristic")
    texts = [
        PROSE + " " + PROSE,
        "Der Rucksack ist leicht und die Träger sind bequem. Wir haben ihn mit der Gruppe getestet und es war gut.",
        "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n```\ncode\n```",
    ]
    kept, _ = run_stage_in_memory(stage, stage.config(), [row(t) for t in texts])
    labels = [json.loads(r["labels"]) for r in kept]
    assert [x["language"] for x in labels] == ["en", "de", "unknown"]
    assert labels[0]["length"] == "medium" and labels[1]["length"] == "short"
    assert labels[2]["has_table"] and labels[2]["has_code"] and not labels[0]["has_table"]
    assert 4 <= labels[0]["reading_level"] <= 12


def test_select_threshold_on_labels_and_signals():
    label, quality, select = (get_stage(n) for n in ("label.heuristic", "filter.quality", "select.threshold"))
    rows = [
        row(PROSE),
        row("Der Rucksack ist leicht und die Träger sind bequem, wir haben es mit der Gruppe getestet."),
    ]
    rows, _ = run_stage_in_memory(label, label.config(), rows)
    rows, _ = run_stage_in_memory(quality, quality.config(profile="company_docs"), rows)
    config = select.config(rules=[{"field": "labels.language", "op": "in", "value": ["en"]}])
    kept, dropped = run_stage_in_memory(select, config, rows)
    assert len(kept) == 1 and dropped[0][REJECT_REASON] == "select_labels_language"
    assert "'de'" in dropped[0]["_reject_detail"]
    config = select.config(rules=[{"field": "signals.quality.words", "op": ">=", "value": 50, "name": "long_enough"}])
    kept, dropped = run_stage_in_memory(select, config, rows)
    assert [r[REJECT_REASON] for r in dropped] == ["select_long_enough"]
    config = select.config(rules=[{"field": "labels.topic", "op": "==", "value": "x", "missing": "drop"}])
    assert len(run_stage_in_memory(select, config, rows)[1]) == 2
    with pytest.raises(ValueError, match="must start with labels"):
        select.config(rules=[{"field": "text", "op": "==", "value": 1}])
