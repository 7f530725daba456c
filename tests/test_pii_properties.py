"""A planted value of each PII type is redacted wherever it sits: at the start or end of the text or of a line,
next to any punctuation, a tab or a newline, inside a JSON field, a CSV cell, an e-mail header or a file name.
Phone numbers are valid numbers of their region (phonenumbers' example numbers, varied)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.rows import new_document
from curate.stages.pii import PIIConfig, luhn_ok, scrub_row
from tests.conftest import require

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PUNCTUATION = [*".,;:!?)]}\"'", "\t", "\n", " ", ""]
OPENING = ["(", "[", "{", '"', "'", "\t", "\n", " ", ""]


def _luhn_complete(digits: str) -> str:
    return next(digits + str(d) for d in range(10) if luhn_ok(digits + str(d)))


def _iban(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


@st.composite
def phones(draw):
    phonenumbers = require("phonenumbers")
    region = draw(st.sampled_from(["US", "GB", "DE", "FR", "CA", "AU", "NL", "IN"]))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    tail = draw(st.text("0123456789", min_size=2, max_size=2))
    varied = phonenumbers.parse(f"+{example.country_code}{national[:-2]}{tail}")
    if not phonenumbers.is_valid_number(varied):
        varied = example
    style = draw(st.sampled_from(["INTERNATIONAL", "E164"] + (["NATIONAL"] if region in ("US", "CA") else [])))
    return phonenumbers.format_number(varied, getattr(phonenumbers.PhoneNumberFormat, style))


VALUES = {
    "email": st.from_regex(r"[a-z]{2,8}(\.[a-z]{2,6})?@[a-z]{3,9}\.(com|org|net|co\.uk)", fullmatch=True),
    "phone": phones(),
    "card": st.sampled_from(["4", "51", "37"]).flatmap(
        lambda prefix: st.text("0123456789", min_size=15 - len(prefix), max_size=15 - len(prefix)).map(
            lambda rest: _luhn_complete(prefix + rest)
        )
    ),
    "iban": st.text("0123456789", min_size=18, max_size=18).map(lambda d: _iban("DE", d)),
    "ssn": st.tuples(st.integers(1, 665), st.integers(1, 99), st.integers(1, 9999)).map(
        lambda t: f"{t[0]:03d}-{t[1]:02d}-{t[2]:04d}"
    ),
    "ip": st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t))),
    "secret": st.sampled_from(["AKIA", "ghp_"]).flatmap(
        lambda p: st.text(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            min_size=16 if p == "AKIA" else 36,
            max_size=16 if p == "AKIA" else 36,
        ).map(lambda r: p + r)
    ),
}


def _leaks(row: dict, value: str) -> bool:
    text = json.dumps(row, ensure_ascii=False)
    return value in text or json.dumps(value)[1:-1] in text


@SETTINGS
@given(
    kind=st.sampled_from(sorted(VALUES)),
    data=st.data(),
    before=st.sampled_from(OPENING),
    after=st.sampled_from(PUNCTUATION),
    where=st.sampled_from(["text start", "text end", "line start", "line end", "middle"]),
)
def test_a_planted_value_is_redacted_wherever_it_sits_in_text(kind, data, before, after, where):
    value = data.draw(VALUES[kind])
    planted = f"{before}{value}{after}"
    text = {
        "text start": f"{planted} is on file.",
        "text end": f"Please use {planted}",
        "line start": f"Notes:\n{planted} for the refund\nThanks",
        "line end": f"Notes: call {planted}\nThanks",
        "middle": f"Reach the customer at {planted} today or tomorrow.",
    }[where]
    row = new_document(doc_id="d", ordinal=0, text=text, source="a.md", title="t", meta={})
    assert not _leaks(scrub_row(row, PIIConfig(), {}), value), (kind, text)


@SETTINGS
@given(
    kind=st.sampled_from(sorted(VALUES)), data=st.data(), container=st.sampled_from(["json", "csv", "header", "file"])
)
def test_a_planted_value_is_redacted_in_fields_headers_and_file_names(kind, data, container):
    value = data.draw(VALUES[kind])
    meta: dict = {"format": "jsonl"}
    source = "support/ticket.jsonl"
    if container == "json":  # a record field, after an escaped newline and a tab in the JSON text
        meta["fields"] = {"notes": f"see below\n\t{value}", "history": [{"note": f"({value})"}]}
    elif container == "csv":  # a CSV cell, as the CSV reader keeps it
        meta = {"format": "csv", "fields": {"contact": value, "body": f"{value},next"}}
    elif container == "header":
        meta = {"format": "email", "from": f"Pat <{value}>", "subject": f"Re: {value}"}
    else:
        source = f"inbox/{value}.eml"
    row = new_document(doc_id="d", ordinal=0, text="hello", source=source, title="t", meta=meta)
    out = scrub_row(row, PIIConfig(), {})
    assert not _leaks(out, value), (kind, container, out)
    json.loads(out["meta"])  # still valid JSON
    if container == "file":
        assert out["source"].startswith("inbox/pii-") and out["source"].endswith(".eml")
