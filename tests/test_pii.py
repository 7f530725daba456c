"""pii.redact: positives and negatives per type, placeholders, actions, allow-lists, and a PII-free run dir."""

from __future__ import annotations

import json

import pytest

from curate.executors.memory import run_stage_in_memory
from curate.rows import REJECT_REASON, new_document
from curate.stages import get_stage
from curate.stages.pii import PIIConfig, iban_ok, luhn_ok, scrub
from tests.conftest import require, write

POSITIVES = [
    ("email", "write to jordan.miles@example.com today", "write to <EMAIL> today"),
    ("email", "cc: a.b+tag@mail.example.co.uk", "cc: <EMAIL>"),
    ("phone", "call 303-555-0187 now", "call <PHONE> now"),
    ("phone", "Phone: (720) 555-0143.", "Phone: <PHONE>."),
    ("phone", "mobile +1 720 555 0199", "mobile <PHONE>"),
    ("phone", "London +44 20 7946 0958", "London <PHONE>"),
    ("phone", "Berlin +49 30 1234567", "Berlin <PHONE>"),
    ("card", "my card 4111 1111 1111 1111 was charged", "my card <CARD> was charged"),
    ("card", "Amex 3782-822463-10005", "Amex <CARD>"),
    ("card", "card 5555555555554444.", "card <CARD>."),
    ("ssn", "SSN 123-45-6789 on file", "SSN <SSN> on file"),
    ("national_id", "NINO AB 12 34 56 C", "NINO <NATIONAL_ID>"),
    ("national_id", "SIN 130 692 544", "SIN <NATIONAL_ID>"),
    ("ip", "from 192.168.1.20 at", "from <IP> at"),
    ("ip", "v6 2001:db8::8a2e:370:7334 ok", "v6 <IP> ok"),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32.", "IBAN <IBAN>."),
    ("iban", "to DE89370400440532013000 please", "to <IBAN> please"),
    ("secret", "key AKIAIOSFODNN7EXAMPLE here", "key <SECRET> here"),
    ("secret", "token ghp_" + "a1B2" * 9 + " end", "token <SECRET> end"),
    ("secret", "Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer <SECRET>"),
    ("secret", "password=hunter22; user=bob", "password=<SECRET>; user=bob"),
    ("secret", "OPENAI_API_KEY: sk-proj-abcdefghijklmnopqrstuvwx", "OPENAI_API_KEY: <SECRET>"),
    ("secret", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "<SECRET>"),
    # Found since the third reliability review (each passed untouched, or was cut wrongly, before).
    ("email", "write to josé.garcía@example.com now", "write to <EMAIL> now"),
    ("email", "or anna@bücher.de.", "or <EMAIL>."),
    ("iban", "iban de89 3704 0044 0532 0130 00 ok", "iban <IBAN> ok"),
    ("iban", "IBAN DE89-3704-0044-0532-0130-00, thanks", "IBAN <IBAN>, thanks"),
    ("card", "card 4111.1111.1111.1111 expired", "card <CARD> expired"),
    ("phone", "escaped\\n+1 201-555-0123 in an export", "escaped\\n<PHONE> in an export"),
    ("secret", "slack xoxb-1234567890-abcdefghijkl here", "slack <SECRET> here"),  # detect-secrets
    ("secret", "db https://app:Tr0ub4dor3xyz@db.example.com/x", "db https://app:<SECRET>@db.example.com/x"),
    ("secret", 'value = "k8Qz3Vt9Lm2Xp7Rb4Nw6Yc1Hs5Dg0Jf"', 'value = "<SECRET>"'),  # high entropy
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(POSITIVES)]
)
def test_each_type_is_found_and_replaced(kind, text, expected):
    out, counts = scrub(text, PIIConfig())
    assert out == expected
    assert counts == {kind: 1}


NEGATIVES = [
    "order A-55120 shipped on 2026-05-02 at 10:30",
    "delivery in 3-5 business days, 1,499 USD, version 2.14.1",
    "Boulder, CO 80302; 14 stores since 1998; 30,000 repairs",
    "SKU TH2-GRN, 0 - 499 USD, rated to minus 7, 7075 aluminium",
    "card 4111 1111 1111 1112 fails Luhn",
    "SSN-like 000-12-3456 and 666-12-3456 are invalid",
    "IBAN GB82 WEST 1234 5698 7654 33 has a bad checksum",
    "IP 999.1.1.1 and 10.0.0 are not addresses; time 10:30:15",
    "email me at name at example dot com",
    "the password field must be at least 14 characters",
    "ticket #123-456-789 is open; call extension 4411",
    "Firmware version 1.2.0.14 fixes the fan; v2.0.0.1 is next",
    '{"b": 1,  "a": "see   docs"}',
    '[Note] In C use printf("a\\nb") to print two lines',
    "IBAN DE89 3704 0044 0532 0130 01 fails its check digits",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_left_alone(text):
    out, counts = scrub(text, PIIConfig())
    assert counts == {} and out == text


def test_text_that_looks_like_json_keeps_every_byte_and_keys_are_read_as_words():
    stage = get_stage("pii.redact")
    text = '{"b": 1,  "a": "see   docs"} and [Note] printf("a\\nb")'
    fields = {"customer_name": "Jane Doe", "first_name": "Jane", "agent": "Jane Doe", "contact": "Jane Doe",
              "secretary": "Jane's desk", "token_count": "512", "product_name": "Trail Tent",
              "auth_token": "abc", "clientSecret": "xyz", "payload": '{"b": 1,  "a": "no pii"}'}  # fmt: skip
    row = new_document(doc_id="T-1", ordinal=0, text=text, source="t", title="", meta={"fields": fields})
    [out], _ = run_stage_in_memory(stage, stage.config(), [row])
    assert out["text"] == text
    got = json.loads(out["meta"])["fields"]
    assert {k: got[k] for k in ("customer_name", "first_name", "agent", "contact")} == dict.fromkeys(
        ("customer_name", "first_name", "agent", "contact"), "<NAME>"
    )
    assert got["secretary"] == "Jane's desk" and got["token_count"] == "512" and got["product_name"] == "Trail Tent"
    assert got["auth_token"] == got["clientSecret"] == "<SECRET>"
    assert got["payload"] == fields["payload"]  # JSON in a field with nothing to redact is not re-serialised


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")


def test_allow_lists_and_keep():
    config = PIIConfig(allow=["1-800-555-0142"], allow_domains=["acme-outdoor.example"])
    out, counts = scrub(
        "Mail returns@acme-outdoor.example or ann@gmail.com, call 1-800-555-0142 or 303-555-0187", config
    )
    assert out == "Mail returns@acme-outdoor.example or <EMAIL>, call 1-800-555-0142 or <PHONE>"
    assert counts == {"email": 1, "phone": 1}
    out, counts = scrub("ann@gmail.com 303-555-0187", PIIConfig(actions={"phone": "keep"}))
    assert out == "<EMAIL> 303-555-0187"


def test_stage_scrubs_text_title_and_meta_and_counts():
    stage = get_stage("pii.redact")
    row = new_document(
        doc_id="T-1",
        ordinal=0,
        text="Card 4111 1111 1111 1111, mail ann@gmail.com",
        source="t.jsonl",
        title="From bob@corp.example",
        meta={"fields": {"customer_email": "ann@gmail.com"}},
    )
    kept, _ = run_stage_in_memory(stage, stage.config(), [row])
    out = kept[0]
    assert out["text"] == "Card <CARD>, mail <EMAIL>" and out["title"] == "From <EMAIL>"
    assert json.loads(out["meta"])["fields"]["customer_email"] == "<EMAIL>"
    assert json.loads(out["signals"])["pii"] == {"card": 1, "email": 3}


def test_drop_action_rejects_with_redacted_text():
    stage = get_stage("pii.redact")
    row = new_document(
        doc_id="T-1", ordinal=0, text="Card 4111 1111 1111 1111 and ann@gmail.com", source="t", title="", meta={}
    )
    kept, dropped = run_stage_in_memory(stage, stage.config(actions={"card": "drop", "email": "keep"}), [row])
    assert kept == [] and dropped[0][REJECT_REASON] == "pii_card"
    assert "4111" not in dropped[0]["text"] and "ann@gmail.com" not in dropped[0]["text"]


PLANTED = [
    "jordan.miles@example.com",
    "303-555-0187",
    "4111 1111 1111 1111",
    "(720) 555-0143",
    "720 555 0199",
    "priya.shah@example.org",
    "nina.patel@example.com",
    "anon@example.com",
    "sam.okafor@example.net",
]


def test_no_planted_pii_anywhere_under_the_run_directory(sample_run):
    result, _ = sample_run
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".arrow" for p in files) and any("work" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in PLANTED:
            assert secret.encode() not in data, f"{secret} in {path}"
    stats = json.loads((result.dataset_dir / "stats.json").read_text())
    pii = next(s for s in stats["steps"] if s["step"] == "pii.redact@3")
    assert pii["counters"]["pii_email"] >= 8 and pii["counters"]["pii_card"] == 1 and pii["counters"]["pii_phone"] >= 3
    # The company's public address survives (allow-listed in the sample recipe).
    docs = (result.dataset_dir / "documents" / "documents.jsonl").read_text()
    assert "returns@acme-outdoor.example" in docs and "<EMAIL>" in docs
    rejects = (result.dataset_dir / "rejects" / "rejects.jsonl").read_text()
    assert "<EMAIL>" in rejects  # reader rejects (malformed tickets) were scrubbed after the fact
    # No pseudonym key in the sample: the summary says once that the salt of the pseudonyms is public.
    assert sum("public salt" in note for note in stats["notes"]) == 1


def test_json_fields_are_scrubbed_value_by_value_and_stay_valid_json():
    from curate.stages.pii import PIIConfig, scrub_row

    meta = {
        "format": "jsonl",
        "fields": {
            "notes": "call back\n+1 415-555-0132\tthen\nmail jane.doe@example.com",
            "db_password": "hunter2-is-not-a-pattern",
            "customer": "Jane Doe",
            "requester": {"name": "Sam Okafor"},
            "name": "Trailhead 2",  # a product column: only listed person fields are names
            "history": ["ssn 123-45-6789", {"api_key": "abc"}],
        },
    }
    counts: dict[str, int] = {}
    row = scrub_row({"id": "d#0", "doc_id": "d", "text": "t", "meta": json.dumps(meta)}, PIIConfig(), counts)
    fields = json.loads(row["meta"])["fields"]  # still valid JSON
    assert fields["notes"] == "call back\n<PHONE>\tthen\nmail <EMAIL>"
    assert fields["db_password"] == "<SECRET>" and fields["history"][1]["api_key"] == "<SECRET>"
    assert fields["customer"] == "<NAME>"
    assert fields["name"] == "Trailhead 2" and fields["history"][0] == "ssn <SSN>"
    assert counts["name"] == 1 and counts["secret"] == 2
    custom = scrub_row({"meta": json.dumps(meta)}, PIIConfig(person_fields=["name"]), {})
    assert json.loads(custom["meta"])["fields"]["name"] == "<NAME>"


def test_identifiers_holding_pii_get_stable_pseudonyms_that_keep_the_extension(in_tmp):
    from curate.pipeline import curate
    from curate.recipe import validate_recipe

    write(
        in_tmp / "docs" / "jane.doe@gmail.com.eml",
        "From: Jane <jane.doe@gmail.com>\nSubject: Tent\n\nMy tent leaks.\n",
    )
    write(in_tmp / "docs" / "tickets.jsonl", '{"id": "sam@example.org", "text": "Where is my parcel? It is late."}\n')
    raw = {
        "name": "ids", "input": {"paths": ["docs"]},
        "stages": [{"use": "pii.redact"}, {"use": "chunk.sections"}],
        "generate": [{"kind": "qa", "per_doc": 1, "min_words": 1, "sources": ["*.eml"]}],
        "output": {"dir": "run"},
    }  # fmt: skip
    result = curate(validate_recipe(raw))
    docs = [
        json.loads(line) for line in (result.dataset_dir / "documents" / "documents.jsonl").read_text().splitlines()
    ]
    sources = sorted(d["source"] for d in docs)
    assert sources[0].startswith("pii-") and sources[0].endswith(".eml") and sources[1] == "tickets.jsonl"
    ticket = next(d for d in docs if d["source"] == "tickets.jsonl")
    assert ticket["doc_id"].startswith("pii-") and ticket["id"] == ticket["doc_id"] + "#0"
    again = curate(validate_recipe({**raw, "output": {"dir": "run2"}}))  # the same pseudonyms every time
    assert (again.dataset_dir / "documents" / "documents.jsonl").read_text() == (
        result.dataset_dir / "documents" / "documents.jsonl"
    ).read_text()
    for path in (in_tmp / "run").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"jane.doe@gmail.com" not in data and b"sam@example.org" not in data, path


def test_presidio_adds_names_and_places_in_free_text(tmp_path):
    """The plumbing, with a spaCy pipeline built here (blank English and an entity ruler): spaCy's trained models
    are not on the package registry."""
    require("presidio_analyzer")
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([
        {"label": "PERSON", "pattern": [{"LOWER": "jane"}, {"LOWER": "doe"}]},
        {"label": "GPE", "pattern": "Denver"},
    ])  # fmt: skip
    nlp.to_disk(tmp_path / "pipeline")
    config = PIIConfig(presidio=True, presidio_model=str(tmp_path / "pipeline"))
    out, counts = scrub("Jane Doe moved to Denver; mail jane@example.com", config)
    assert out == "<NAME> moved to <LOCATION>; mail <EMAIL>"
    assert counts == {"email": 1, "name": 1, "location": 1}


def test_presidio_without_its_model_names_the_command():
    require("presidio_analyzer")
    from curate.errors import StageError

    with pytest.raises(StageError, match=r"python -m spacy download en_core_web_nonexistent"):
        scrub("Jane Doe", PIIConfig(presidio=True, presidio_model="en_core_web_nonexistent"))
