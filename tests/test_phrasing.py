"""Offline questions and summaries that read as a person wrote them (curate/generate/phrasing.py, summary.py):
words cased as the documents write them, titles with the right article, questions about the fact a section states
answered with the sentences that state it, and summaries of the most central sentences."""

from __future__ import annotations

import json

from curate.generate.phrasing import Truecaser, names_title, section_facts, title_ref, topic_phrase
from curate.generate.summary import central_summary
from tests.conftest import write

CORPUS = [
    "Your performance reviews happen twice a year. We keep communication in Basecamp, and paid vacation is "
    "planned with your team. Claims go to Long Term Disability through the insurer, and Long Term Disability "
    "pays after the waiting period. Ask the People Ops team about vacation.",
]


def test_headings_are_cased_as_the_documents_write_them_and_names_stay():
    casing = Truecaser(CORPUS)
    assert topic_phrase("Performance Reviews", casing) == "performance reviews"
    assert topic_phrase("Communication", casing) == "communication"
    assert topic_phrase("Long Term Disability", casing) == "Long Term Disability"  # a name, kept whole
    assert topic_phrase("People Ops", casing) == "People Ops"
    assert topic_phrase("Your Performance Reviews", casing) == "the performance reviews"  # the asker is not "you"
    assert topic_phrase("QA Vacation", casing) == "QA Vacation"  # an acronym keeps its run


def test_titles_take_the_article_they_need():
    casing = Truecaser(CORPUS)
    assert title_ref("Our Internal Systems", casing) == 'the "Our Internal Systems" page'  # never "the Our ..."
    assert title_ref("How We Work", casing) == 'the "How We Work" page'
    assert title_ref("37signals Employee Handbook", casing) == "the 37signals Employee Handbook"
    assert title_ref("The Returns Policy", casing) == "the Returns Policy"
    assert names_title("Titles for Support Leadership", "Titles for Support")  # no "Titles ... for Titles ..."
    assert not names_title("Queenbee", "Our Internal Systems")


def test_a_section_that_states_a_fact_is_asked_for_it_and_answered_with_its_sentences():
    casing = Truecaser(CORPUS)
    text = (
        "37signals offers 20 days of vacation per year. If you become the primary caregiver of a child, you can "
        "take up to 16 weeks leave at 100% pay. Meet-ups are 1 week long. There's a 90 day waiting period for "
        "Long Term Disability.\n\nYou're eligible to join profit sharing after two years of working here."
    )
    facts = {f.question: f.answer for f in section_facts("Time Off", text, casing)}
    assert facts == {
        "How many days of vacation does 37signals offer?": "37signals offers 20 days of vacation per year.",
        "If I become the primary caregiver of a child, how many weeks of leave can I take?": (
            "If you become the primary caregiver of a child, you can take up to 16 weeks leave at 100% pay."
        ),
        "How long are meet-ups?": "Meet-ups are 1 week long.",
        "How long is the waiting period for Long Term Disability?": (
            "There's a 90 day waiting period for Long Term Disability."
        ),
        "When am I eligible to join profit sharing?": (
            "You're eligible to join profit sharing after two years of working here."
        ),
    }
    definition = section_facts("Queenbee", "[Queenbee](https://x.example) is our billing system. It runs.", casing)
    assert [(f.kind, f.question) for f in definition] == [("definition", "What is Queenbee?")]
    assert definition[0].answer == "[Queenbee](https://x.example) is our billing system. It runs."
    steps = "1. Open Account.\n2. Choose Returns.\n3. Print the label."
    how = section_facts("How to start a return", steps, casing)
    assert [(f.kind, f.question, f.answer) for f in how] == [("procedure", "How do I start a return?", steps)]
    gerund = section_facts("Requesting Vacation", steps, Truecaser([*CORPUS, "You request it early."]))
    assert [f.question for f in gerund] == ["How do I request vacation?"]
    assert section_facts("Requesting Vacation", "Talk to your team first.", casing) == []  # no steps: no procedure
    price = section_facts("Plans", "| Plan | Price |\n| --- | --- |\n| Basic | $10 |\n| Pro | $20 |", casing)
    assert [(f.question, f.answer) for f in price] == [("What is the price for Basic?", "The price for Basic is $10.")]
    table = "| Skill | Junior (L1) | Senior (L3) |\n| --- | --- | --- |\n| *Scope* | Small tasks | Whole projects |"
    grid = section_facts("Levels", table + "\n| *Trust* | Reviewed | Trusted |", casing)
    assert len(grid) == 1 and grid[0].answer in ("For Scope, under Junior (L1): Small tasks.",
                                                 "For Scope, under Senior (L3): Whole projects.")  # fmt: skip
    assert "Scope" in grid[0].question and grid[0].answer.split(",")[1].split(":")[0][7:] in grid[0].question
    assert section_facts("Culture", "We like calm work. Meetings are rare.", casing) == []  # no clear fact


def test_a_summary_is_the_most_central_sentences_not_the_first():
    text = (
        "Welcome to the wiki, we hope you like it here. Returns are accepted within 30 days of delivery. "
        "A return needs the receipt and the original tags. Refunds for returns go back to the card within a week. "
        "The office plant is called Gerald."
    )
    assert central_summary(text, 2) == (
        "Returns are accepted within 30 days of delivery. Refunds for returns go back to the card within a week."
    )
    assert central_summary("One short sentence here.", 2) == "One short sentence here."


def test_offline_qa_on_a_handbook_reads_naturally(in_tmp):
    """The issue's handbook questions, on a small fixture: no "the Our ...", no title asked about itself, a fact
    section asked for its fact, and its test question asked about its topic (answered with the section)."""
    from curate.pipeline import curate
    from curate.recipe import load_recipe

    write(in_tmp / "docs" / "systems.md", "# Our Internal Systems\n\n## Dash\n\nDash is the main hub for logging "
          "and reporting. It shows slow requests and delivered emails, and every team uses it each day.\n\n"
          "## Vacation\n\nEmployees get 25 days of paid vacation per year. Plan them with your team early, and "
          "tell your manager a month before a long trip so the work is covered.\n")  # fmt: skip
    write(in_tmp / "r.yaml", "name: hb\ninput: {paths: [docs]}\nstages: [{use: chunk.sections}]\n"
          "generate: [{kind: qa, per_doc: 3, min_words: 5}]\nsplit: {holdout_documents: 0}\n")  # fmt: skip
    result = curate(load_recipe("r.yaml"))
    rows = [json.loads(line) for name in ("train", "test") for line in (result.dataset_dir / f"{name}.jsonl").open()]
    asked = {ex["messages"][-2]["content"]: (ex["messages"][-1]["content"], json.loads(ex["meta"])) for ex in rows}
    assert not [q for q in asked if "the Our" in q or "Our Internal Systems for" in q], list(asked)
    facts = {q: a for q, (a, meta) in asked.items() if meta.get("fact")}
    assert any("what is dash?" in q.lower() for q in facts), list(asked)
    assert any("how many days of paid vacation do employees get?" in q.lower() for q in facts), list(asked)
    assert all(not meta["holdout"] for _, meta in asked.values() if meta.get("fact"))  # facts train; tests ask topics
    vacation = next(a for q, a in facts.items() if "vacation" in q)
    assert vacation == "Employees get 25 days of paid vacation per year."  # the sentence, not the section


def test_dropping_sentences_keeps_every_other_line_and_leaves_no_match():
    """drop_sentences (blocklist redaction, placeholders in answers): text without a match comes back byte for
    byte, and what comes back never matches."""
    import re

    from hypothesis import given
    from hypothesis import strategies as st

    from curate.text import drop_sentences

    pattern = re.compile(r"(?<!\w)Project\s+Bluebird(?!\w)", re.I)
    pieces = st.sampled_from(["Tents are dry.", "Project Bluebird ships.", "Project\nBluebird.", "- item", "| a |",
                              "# Heading", "1. Step one.", "", "see project bluebird now", "Plain words"])  # fmt: skip

    @given(st.lists(pieces, max_size=12))
    def check(parts):
        text = "\n".join(parts)
        out = drop_sentences(text, pattern)
        assert not pattern.search(out)
        if not pattern.search(text.replace("\n", " ")):
            assert out == text

    check()
