"""The hostile-input suite, built once per run: a folder with a bad file of every format (binary, empty,
truncated, encrypted, a zip bomb, deep nesting, bad encodings, huge lines and cells, links out of the folder, odd
names) and personal data of every type planted in every kind of field (text, title, JSON field, CSV cell, e-mail
header, file name, record id). The run completes; every input file is in documents/ or rejects/ (a file with no
kept row has a reject naming it); no planted value is anywhere under the run directory: data, rejects,
checkpoints, the LLM request cache, the report."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from tests.conftest import label_answer, write

PLANTED = {
    "email": "hostile.person@example.org",
    "phone": "+1 201-555-0123",
    "card": "4111 1111 1111 1111",
    "iban": "DE89370400440532013000",
    "ssn": "123-45-6789",
    "ip": "203.0.113.77",
    "secret": "AKIAIOSFODNN7HOSTILE",
    "name": "Jolene Brightwater",  # a person field's value (customer, from)
}
# File names and record ids that hold personal data: they are replaced by pseudonyms.
PII_NAME = f"{PLANTED['email']}.eml"
PII_ID = "ssn-123-45-6789"


def _pdf(text: str) -> bytes:
    from sample_data.make_documents import pdf_bytes

    return pdf_bytes([[text, "A second line of the page."]], title="Hostile")


def _zip_bomb(inflated: int) -> bytes:
    """A DOCX-shaped zip whose one member inflates to ``inflated`` zero bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * inflated)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory):
    import pypdf

    from curate.pipeline import curate
    from curate.recipe import validate_recipe
    from curate.report.html import write_report
    from tests.openai_server import FakeOpenAI

    root = tmp_path_factory.mktemp("hostile")
    docs = root / "docs"
    p = PLANTED
    prose = (  # names in free text are presidio's job (an extra); here names sit in person fields
        f"The customer wrote from {p['email']}; call {p['phone']}.\n"
        f"Card {p['card']} and IBAN {p['iban']}, SSN {p['ssn']}, from {p['ip']}, key {p['secret']}."
    )
    write(docs / "good.md", f"# Refunds for {p['email']}\n\nRefunds take five to ten business days.\n\n{prose}\n")
    write(docs / "binary.md", b"abc\x00\x01\x02" * 100)
    write(docs / "empty.txt", "")
    write(docs / "truncated.pdf", _pdf("Truncated manual page.")[:300])
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(_pdf("Locked page."))))
    writer.encrypt("s3cret")
    locked = io.BytesIO()
    writer.write(locked)
    write(docs / "encrypted.pdf", locked.getvalue())
    write(docs / "bomb.docx", _zip_bomb(20 * 2**20))
    write(docs / "not-a-deck.pptx", b"PK\x03\x04 this is not a presentation")
    write(docs / "deep.html", "<html><body>" + "<div>" * 1200 + "deep text" + "</div>" * 1200 + "</body></html>")
    write(docs / "deep.jsonl", '{"id": "ok-1", "text": "A fine record."}\n' + "[" * 100_000 + "\n")
    write(docs / "bignum.jsonl", '{"id": "n-1", "text": "Big number", "n": ' + "9" * 5000 + "}\n")
    write(docs / "cp1252.txt", "Caf\xe9 policy: refunds in five days.".encode("cp1252"))
    write(docs / "huge-line.txt", "word " * 60_000)
    fields = {"customer": p["name"], "notes": f"see below\n\t{p['phone']}", "password": "hunter2hunter2"}
    write(docs / "tickets.jsonl", json.dumps({"id": PII_ID, "text": prose, "subject": p["email"], **fields}) + "\n")
    long_cell = "x" * 140_000
    write(
        docs / "export.csv", f"id,text,contact\nc-1,{long_cell} {p['card']},{p['email']}\nc-2,short row,{p['phone']}\n"
    )
    write(docs / PII_NAME, f"From: {p['name']} <{p['email']}>\nTo: support@acme.example\nSubject: Tent\n\n{prose}\n")
    write(docs.parent / "outside" / "secret.md", f"# Outside\n\n{p['email']} must never be read.\n")
    os.symlink(docs.parent / "outside" / "secret.md", docs / "linked.md")
    os.symlink(docs.parent / "outside", docs / "linked-folder")
    write(docs / os.fsdecode(b"latin1-caf\xe9.md"), "# Cafe\n\nA file whose name is not UTF-8.\n")

    server = FakeOpenAI().start()
    server.responder = label_answer
    os.environ["GRISTMILL_TEST_KEY"] = "sk-hostile-test"
    raw = {
        "name": "hostile",
        "input": {
            "paths": [str(docs), f"{docs}/**/*.md"],
            "fields": {"text": "text", "id": "id", "title": "subject"},
            "max_unpacked_bytes": 10 * 2**20,
        },
        "stages": [
            {"use": "pii.redact"},
            {"use": "normalize.text"},
            {"use": "chunk.sections", "with": {"max_words": 120, "overlap_words": 0}},
            {"use": "label.llm"},
        ],
        "generate": [{"kind": "qa", "per_doc": 1, "min_words": 3}],
        "split": {"holdout_documents": 0.0},
        "llm": {"base_url": server.base_url, "model": "fake-model", "api_key_env": "GRISTMILL_TEST_KEY"},
        "output": {"dir": str(root / "run")},
    }
    try:
        result = curate(validate_recipe(raw))
    finally:
        server.stop()
    write_report(result.dataset_dir, root / "run" / "report.html")
    return root, result


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_run_completes_and_every_input_file_is_kept_or_rejected_by_name(hostile_run):
    from curate.readers import discover
    from curate.stages.pii import PIIConfig, scrub_source

    root, result = hostile_run
    documents = _jsonl(result.dataset_dir / "documents" / "documents.jsonl")
    rejects = _jsonl(result.dataset_dir / "rejects" / "rejects.jsonl")
    kept = {d["source"] for d in documents}
    rejected = {r["source"]: r["reason"] for r in rejects if r["stage"] == "read"}
    files = discover([str(root / "docs"), f"{root / 'docs'}/**/*.md"])
    for f in files:
        source = scrub_source(f.source, PIIConfig(), {})
        assert source in kept or source in rejected, f.source
    expected = {
        "binary.md": "binary_file",
        "empty.txt": "empty_file",
        "truncated.pdf": "corrupt_file",
        "encrypted.pdf": "encrypted_file",
        "bomb.docx": "zip_bomb",
        "not-a-deck.pptx": "corrupt_file",
        "linked.md": "outside_input_root",
        "linked-folder/secret.md": "outside_input_root",
        "bignum.jsonl": "malformed_record",  # its one record holds a 5,000-digit number
    }
    for source, reason in expected.items():
        assert rejected.get(source) == reason, (source, rejected.get(source))
    # Exactly these files have no document, each for its own reason; every other file is read.
    not_kept = {scrub_source(f.source, PIIConfig(), {}) for f in files} - kept
    assert not_kept == set(expected), not_kept ^ set(expected)
    assert "latin1-caf\\xe9.md" in kept  # a non-UTF-8 name, shown with its byte escaped
    reasons = {r["reason"] for r in rejects}
    assert "malformed_record" in reasons  # the 100k '[' line and the 5,000-digit number, each one record
    assert {"deep.jsonl", "huge-line.txt", "cp1252.txt", "export.csv"} <= kept
    assert any(d["source"] == "export.csv" and len(d["text"]) > 131_072 for d in documents)  # a long CSV cell
    deep = next(d for d in documents if d["source"] == "deep.html")  # 1,200 nested <div>s: read, not a crash
    assert deep["text"] == "deep text"


def test_no_planted_value_survives_anywhere_under_the_run_directory(hostile_run):
    root, _ = hostile_run
    files = [p for p in (root / "run").rglob("*") if p.is_file()]
    assert any(p.name == "llm_cache.sqlite" for p in files) and any(p.name == "report.html" for p in files)
    assert any(p.suffix == ".arrow" for p in files)
    planted = [*PLANTED.values(), PII_ID, "hunter2hunter2"]
    for path in files:
        data = path.read_bytes()
        for value in planted:
            for form in {value, json.dumps(value)[1:-1], value.replace(" ", "")}:
                assert form.encode() not in data, f"{value!r} in {path}"
