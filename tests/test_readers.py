"""Readers: every format, every kind of bad input, and the id/ordinal rules."""

from __future__ import annotations

import codecs
import json

import pytest

from curate.errors import InputError
from curate.readers import discover, read_documents
from curate.readers.html import html_to_markdown
from curate.recipe import FieldsSection
from tests.conftest import write


def read(tmp_path, fields=None, limit=None):
    return read_documents(discover([str(tmp_path)]), fields or FieldsSection(), limit)


def test_markdown_title_from_h1_and_front_matter(tmp_path):
    write(tmp_path / "a.md", "# Refunds\n\nText here.")
    write(tmp_path / "b.md", "---\ntitle: From Front Matter\nowner: ops\n---\n# Heading\n\nBody.")
    write(tmp_path / "c-notes_file.md", "No heading at all.")
    rows = read(tmp_path).rows
    assert [r["title"] for r in rows] == ["Refunds", "From Front Matter", "C notes file"]
    assert json.loads(rows[1]["meta"])["front_matter"] == {"title": "From Front Matter", "owner": "ops"}
    assert not rows[1]["text"].startswith("---")


def test_plain_text_title_heuristic(tmp_path):
    write(tmp_path / "policy.txt", "SECURITY POLICY\n\nUse strong passwords.")
    write(tmp_path / "notes.txt", "This first line is a sentence, not a title.\nMore.")
    rows = {r["source"]: r for r in read(tmp_path).rows}
    assert rows["policy.txt"]["title"] == "SECURITY POLICY"
    assert rows["notes.txt"]["title"] == "Notes"


def test_html_keeps_structure_and_drops_chrome():
    html = """<html><head><title>Shipping</title><style>p{color:red}</style><script>alert(1)</script></head>
    <body><nav><a href='/'>Home</a></nav><div class="cookie-banner">Accept cookies</div>
    <main><h1>Shipping</h1><p>We ship <b>fast</b>.</p><h2>Costs</h2>
    <table><tr><th>Method</th><th>Price</th></tr><tr><td>Standard</td><td>7 | 95</td></tr></table>
    <ul><li>One<ul><li>Nested</li></ul></li><li>Two</li></ul><pre>code  line</pre></main>
    <footer>© Acme</footer></body></html>"""
    text, title = html_to_markdown(html)
    assert title == "Shipping"
    assert "# Shipping" in text and "## Costs" in text
    assert "We ship fast." in text
    assert "| Method | Price |\n| --- | --- |\n| Standard | 7 \\| 95 |" in text
    assert "- One\n  - Nested\n- Two" in text
    assert "```\ncode  line\n```" in text
    for chrome in ("alert", "color:red", "Home", "Accept cookies", "© Acme"):
        assert chrome not in text


def test_jsonl_fields_ids_and_bad_records(tmp_path):
    lines = [
        json.dumps({"ticket_id": "T-1", "subject": "Late", "body": "Where is it?", "email": "a@b.c"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"ticket_id": "T-2", "subject": "No body"}),
        "",
        json.dumps({"ticket_id": "T-1", "subject": "Dup", "body": "Same id again"}),
        json.dumps({"ticket_id": "T-3", "body": "No subject"}),
    ]
    write(tmp_path / "t.jsonl", "\n".join(lines))
    result = read(tmp_path, FieldsSection(text="body", id="ticket_id", title="subject"))
    assert [r["doc_id"] for r in result.rows] == ["T-1", "T-3"]
    assert [r["id"] for r in result.rows] == ["T-1#0", "T-3#0"]
    assert [r["ordinal"] for r in result.rows] == [0, 1]
    assert result.rows[0]["title"] == "Late"
    assert json.loads(result.rows[0]["meta"])["fields"] == {"email": "a@b.c"}
    reasons = [(r["reason"], r["id"]) for r in result.rejects]
    assert reasons == [
        ("malformed_record", "t.jsonl:2"),
        ("malformed_record", "t.jsonl:3"),
        ("missing_text_field", "t.jsonl:4"),
        ("duplicate_doc_id", "t.jsonl:6"),
    ]
    missing = result.rejects[2]
    assert "'body'" in missing["detail"] and "input.fields.text" in missing["detail"]
    assert json.loads(missing["row"])["raw"]["subject"] == "No body"  # nothing is lost
    assert all(r["stage"] == "read" and r["source"] == "t.jsonl" for r in result.rejects)


def test_csv_records_and_ragged_rows(tmp_path):
    write(tmp_path / "t.csv", 'id,title,text\n1,First,"Hello, world"\n2,Second\n3,Third,"multi\nline"\n')
    result = read(tmp_path)
    assert [r["doc_id"] for r in result.rows] == ["1", "3"]
    assert result.rows[1]["text"] == "multi\nline"
    assert [r["reason"] for r in result.rejects] == ["malformed_record"]
    assert "2 fields, the header has 3" in result.rejects[0]["detail"]


def test_doc_ids_without_id_field_are_stable_hashes(tmp_path):
    write(tmp_path / "a.jsonl", '{"text": "one"}\n{"text": "two"}\n')
    first = [r["doc_id"] for r in read(tmp_path, FieldsSection(id=None)).rows]
    again = [r["doc_id"] for r in read(tmp_path, FieldsSection(id=None)).rows]
    assert first == again and len(set(first)) == 2 and all(d.startswith("a-") for d in first)


@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        ("Café ünïcode".encode(), "utf-8", "Café ünïcode"),
        (codecs.BOM_UTF8 + "Café".encode(), "utf-8-sig", "Café"),
        ("Café — déjà vu".encode("utf-16"), "utf-16", "Café — déjà vu"),
        ("The café’s price is 25€, naïve résumé façade.".encode("cp1252"), "cp1252", "The café’s price is 25€"),
        ("Возврат товара возможен в течение тридцати дней.".encode("cp1251"), "cp1251", "Возврат товара"),
        ("Zażółć gęślą jaźń, to jest polski tekst o zwrotach.".encode("cp1250"), "cp1250", "Zażółć gęślą jaźń"),
        ("Ο πελάτης μπορεί να επιστρέψει το προϊόν μέσα σε τριάντα ημέρες.".encode("cp1253"), "cp1253", "πελάτης"),
    ],
)
def test_encodings_are_detected_and_recorded(tmp_path, data, encoding, expected):
    write(tmp_path / "doc.txt", data)
    (row,) = read(tmp_path).rows
    assert expected in row["text"]
    assert json.loads(row["meta"])["encoding"] == encoding
    assert "\ufeff" not in row["text"]


def test_bad_files_become_rejects_and_the_run_goes_on(tmp_path):
    write(tmp_path / "ok.md", "# Fine\n\nGood text.")
    write(tmp_path / "empty.md", "")
    write(tmp_path / "blank.txt", "  \n\n ")
    write(tmp_path / "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path / "binary.txt", b"abc\x00\x01\x02def")
    write(tmp_path / "slides.key", "not a format we read")
    write(tmp_path / "broken-utf16.txt", codecs.BOM_UTF16_LE + b"\x00\xd8")  # a lone surrogate
    result = read(tmp_path)
    assert [r["source"] for r in result.rows] == ["ok.md"]
    reasons = {r["source"]: r["reason"] for r in result.rejects}
    assert reasons == {
        "blank.txt": "empty_file",
        "binary.txt": "binary_file",
        "broken-utf16.txt": "undecodable",
        "empty.md": "empty_file",
        "photo.png": "binary_file",
        "slides.key": "unsupported_format",
    }
    assert all(r["row"] is None for r in result.rejects)  # a file that could not be read: no text


def test_discovery_globs_hidden_files_and_sources(tmp_path, monkeypatch):
    write(tmp_path / "docs" / "a.md", "A")
    write(tmp_path / "docs" / "sub" / "b.md", "B")
    write(tmp_path / "docs" / ".git" / "config.md", "hidden")
    write(tmp_path / "docs" / ".hidden.md", "hidden")
    write(tmp_path / "other" / "c.txt", "C")
    monkeypatch.chdir(tmp_path)
    assert [f.source for f in discover(["docs"])] == ["a.md", "sub/b.md"]
    assert [f.source for f in discover(["docs/**/*.md"])] == ["a.md", "sub/b.md"]
    assert [f.source for f in discover(["docs", "other/c.txt"])] == ["docs/a.md", "docs/sub/b.md", "other/c.txt"]
    with pytest.raises(InputError, match=r"input.paths\[1\]: 'nope/\*.md' matches no file"):
        discover(["docs", "nope/*.md"])


def test_limit_reads_at_most_n_documents(tmp_path):
    for i in range(5):
        write(tmp_path / f"d{i}.md", f"doc {i}")
    result = read(tmp_path, limit=3)
    assert [r["ordinal"] for r in result.rows] == [0, 1, 2]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_jsonl_streams_in_any_encoding(tmp_path, encoding):
    lines = [json.dumps({"id": f"r{i}", "text": f"Café déjà vu number {i}"}, ensure_ascii=False) for i in range(3)]
    write(tmp_path / "t.jsonl", ("\n".join(lines) + "\n").encode(encoding))
    result = read(tmp_path)
    assert [r["text"] for r in result.rows] == [f"Café déjà vu number {i}" for i in range(3)]
    assert json.loads(result.rows[0]["meta"])["encoding"] == encoding
