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


def test_a_file_deleted_after_discovery_is_a_reject_not_a_crash(tmp_path):
    from curate.readers import fingerprint_files

    write(tmp_path / "kept.md", "# Kept\n\nStill here.")
    write(tmp_path / "gone.md", "# Gone\n\nDeleted before it was read.")
    files = discover([str(tmp_path)])
    (tmp_path / "gone.md").unlink()
    assert fingerprint_files(files)  # the checkpoint key still computes
    result = read_documents(files, FieldsSection())
    assert [r["source"] for r in result.rows] == ["kept.md"]
    assert [(r["source"], r["reason"]) for r in result.rejects] == [("gone.md", "unreadable_file")]
    assert "FileNotFoundError" in result.rejects[0]["detail"]


def test_caps_on_size_pages_and_unpacked_parts_are_rejects(tmp_path):
    import io
    import zipfile

    from curate.readers.base import ReadOptions
    from sample_data.make_documents import pdf_bytes

    write(tmp_path / "big.txt", "word " * 1000)
    write(tmp_path / "long.pdf", pdf_bytes([["page one"], ["page two"], ["page three"]]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * 50_000)
    write(tmp_path / "bomb.docx", buffer.getvalue())
    lines = [json.dumps({"id": f"r{i}", "text": "word " * 20}) for i in range(50)]
    write(tmp_path / "export.jsonl", "\n".join(lines))  # over the cap, but streamed: never held whole
    options = ReadOptions(max_file_bytes=2000, max_unpacked_bytes=10_000, max_pages=2)
    result = read_documents(discover([str(tmp_path)]), FieldsSection(), options=options)
    reasons = {r["source"]: r["reason"] for r in result.rejects}
    assert reasons == {"big.txt": "file_too_large", "long.pdf": "too_many_pages", "bomb.docx": "zip_bomb"}
    assert len(result.rows) == 50


def test_a_stray_cp1252_byte_in_utf8_decodes_only_that_byte(tmp_path):
    # One pasted Windows character (\x96, an en dash in cp1252) in an otherwise UTF-8 file.
    write(
        tmp_path / "doc.txt", "Café — déjà vu; refunds ".encode() + b"\x96" + " take 30 days, naïve façade.".encode()
    )
    (row,) = read(tmp_path).rows
    assert row["text"] == "Café — déjà vu; refunds – take 30 days, naïve façade."
    assert json.loads(row["meta"])["encoding"] == "utf-8+cp1252"


def test_jsonl_reads_on_past_an_undecodable_byte(tmp_path):
    lines = [json.dumps({"id": f"r{i}", "text": f"Café number {i}"}, ensure_ascii=False).encode() for i in range(4)]
    lines[1] = lines[1].replace(b"number", b"number \x93quoted\x94")  # cp1252 curly quotes, deep in the file
    write(tmp_path / "t.jsonl", b"\n".join(lines) + b"\n")
    result = read(tmp_path)
    assert [r["text"] for r in result.rows] == [
        "Café number 0",
        "Café number “quoted” 1",
        "Café number 2",
        "Café number 3",
    ]
    assert not result.rejects


def _sheets(path, frames):
    import pandas as pd

    engine = "xlwt" if path.suffix == ".xls" else "openpyxl"
    if engine == "xlwt":  # pandas dropped its xlwt writer; write the legacy format directly
        import xlwt

        book = xlwt.Workbook()
        for name, rows in frames.items():
            sheet = book.add_sheet(name)
            for r, row in enumerate([list(rows[0])] + [list(x.values()) for x in rows]):
                for c, value in enumerate(row):
                    sheet.write(r, c, value)
        book.save(str(path))
        return
    with pd.ExcelWriter(path, engine=engine) as writer:
        for name, rows in frames.items():
            pd.DataFrame(rows).to_excel(writer, sheet_name=name, index=False)


@pytest.mark.parametrize("suffix", [".xlsx", ".xls"])
def test_spreadsheets_read_every_sheet_as_text_with_sheet_and_row(tmp_path, suffix):
    _sheets(
        tmp_path / f"faq{suffix}",
        {
            "FAQ": [
                {"id": "00123", "title": "Refunds", "text": "Refunds take 30 days.", "owner": "ops"},
                {"id": "00124", "title": "Empty", "text": "", "owner": "ops"},
            ],
            "Tickets": [{"id": "T-9", "title": "Late", "text": "Where is order 42?", "owner": ""}],
        },
    )
    result = read(tmp_path)
    assert [(r["doc_id"], r["title"], r["text"]) for r in result.rows] == [
        ("00123", "Refunds", "Refunds take 30 days."),  # ids stay text: no 123.0
        ("T-9", "Late", "Where is order 42?"),
    ]
    meta = [json.loads(r["meta"]) for r in result.rows]
    assert [(m["format"], m["sheet"], m["row"]) for m in meta] == [(suffix[1:], "FAQ", 2), (suffix[1:], "Tickets", 2)]
    assert meta[0]["fields"] == {"owner": "ops"}
    (reject,) = result.rejects
    assert reject["reason"] == "missing_text_field" and "sheet 'FAQ'" in reject["detail"]


def test_spreadsheet_sheets_option_picks_sheets_and_names_a_missing_one(tmp_path):
    from curate.readers.base import ReadOptions

    _sheets(tmp_path / "faq.xlsx", {"FAQ": [{"text": "A"}], "Other": [{"text": "B"}]})
    files = discover([str(tmp_path)])
    result = read_documents(files, FieldsSection(), options=ReadOptions(sheets=("Other",)))
    assert [r["text"] for r in result.rows] == ["B"]
    result = read_documents(files, FieldsSection(), options=ReadOptions(sheets=("Nope",)))
    (reject,) = result.rejects
    assert reject["reason"] == "missing_sheet" and "'Nope'" in reject["detail"] and "FAQ, Other" in reject["detail"]


def test_html_keeps_an_articles_header_code_in_list_items_and_nested_tables_once():
    html = """<html><body><header class="site"><a href="/">Acme home</a></header>
    <article><header><h1>Reset your router</h1></header><p>Steps:</p>
    <ol><li>Unplug it.<pre><code>router reset --hard
router status</code></pre></li><li>Wait.</li></ol>
    <table><tr><th>Model</th><th>Ports</th></tr>
    <tr><td>R1</td><td><table><tr><td>LAN</td><td>4</td></tr><tr><td>WAN</td><td>1</td></tr></table></td></tr></table>
    </article></body></html>"""
    text, _ = html_to_markdown(html)
    assert text.startswith("# Reset your router")
    assert "Acme home" not in text
    assert "1. Unplug it.\n\n   ```\n   router reset --hard\n   router status\n   ```\n2. Wait." in text
    assert "| R1 | LAN; 4 / WAN; 1 |" in text
    assert text.count("WAN") == 1


CRAWLED = """<html><head><title>Shipping | Acme</title></head><body>
<div class="topbar"><a href="/">Home</a> <a href="/p">Products</a></div>
<div class="menu-wrap"><ul><li><a href="/a">About us</a></li><li><a href="/b">Blog</a></li></ul></div>
<div id="content"><h1>Shipping times</h1>
<p>Standard orders ship within two business days from our warehouse in Leeds, and express orders placed before
noon ship the same day.</p><h2>International</h2>
<p>International orders take five to ten business days, and customs fees are paid by the recipient.</p></div>
<div class="related"><h3>Related posts</h3><ul><li><a href="/x">Ten tips for faster checkout</a></li></ul></div>
<div class="foot">© 2026 Acme Ltd. All rights reserved. Privacy · Terms · Sitemap</div></body></html>"""


def test_html_main_content_mode_drops_boilerplate(tmp_path):
    pytest.importorskip("trafilatura")  # the gristmill[web] extra; CI installs it, so this cannot skip there
    text, _ = html_to_markdown(CRAWLED, main_content=True)
    assert "## International" in text and "two business days" in text
    for chrome in ("About us", "Ten tips", "All rights reserved", "Products"):
        assert chrome not in text
    assert "Ten tips" in html_to_markdown(CRAWLED)[0]  # the default mode keeps what is not marked as chrome


def test_html_main_content_without_the_web_extra_names_the_install(monkeypatch):
    import sys

    from pydantic import ValidationError

    from curate.recipe import InputSection

    monkeypatch.setitem(sys.modules, "trafilatura", None)  # import fails as if not installed
    with pytest.raises(ValidationError, match=r"pip install 'gristmill\[web\]'"):
        InputSection(paths=["docs"], html_main_content=True)


def test_html_reads_its_declared_charset_and_keeps_asides_but_not_chrome(tmp_path):
    """Before: a Shift_JIS page read as mojibake, and every <aside> and class="menu" was dropped."""
    page = '<html><head><meta charset="shift_jis"><title>返品</title></head><body><p>返品は30日以内</p></body></html>'
    write(tmp_path / "jp.html", page.encode("shift_jis"))
    legacy = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"></head>'
    write(tmp_path / "fr.html", (legacy + "<body><p>Caf\u00e9 \u2013 ouvert</p></body></html>").encode("cp1252"))
    rows = {r["source"]: r for r in read(tmp_path).rows}
    assert rows["jp.html"]["text"] == "返品は30日以内"
    assert json.loads(rows["jp.html"]["meta"])["encoding"] == "shift_jis"
    assert rows["fr.html"]["text"] == "Café – ouvert"  # iso-8859-1 means windows-1252, as browsers read it
    html = """<html><body><nav>Home</nav><div class="menu">Site menu</div><div class="cookie-consent">OK?</div>
    <aside role="complementary">Related links</aside>
    <main><h1>Stoves</h1><p>Cook outside.</p><div class="menu">Breakfast: oats</div></main>
    <aside class="note">Warning: never use the stove inside the tent</aside></body></html>"""
    text, _ = html_to_markdown(html)
    assert "Warning: never use the stove inside the tent" in text and "Breakfast: oats" in text
    for chrome in ("Home", "Site menu", "OK?", "Related links"):
        assert chrome not in text


def test_front_matter_with_crlf_line_ends_is_stripped(tmp_path):
    write(tmp_path / "a.md", b"---\r\nowner: jane@example.com\r\ntitle: Returns\r\n---\r\n# Heading\r\n\r\nBody.\r\n")
    [row] = read(tmp_path).rows
    assert row["title"] == "Returns" and "owner" not in row["text"] and row["text"].startswith("# Heading")
    assert json.loads(row["meta"])["front_matter"] == {"owner": "jane@example.com", "title": "Returns"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café, crème brûlée and naïve".encode() + b" \x93quoted\x94", True),  # UTF-8 with two cp1252 strays
        ("Caf\u00e9 cr\u00e8me \u2013 na\u00efve".encode("cp1252"), False),  # all cp1252
        (b"plain ascii", False),
        ("é".encode() + b"\xe9\xe9", False),  # more bytes that fail than sequences that do
        ("€€".encode() + b"\xe2\x82", True),  # a cut-off sequence counts as its two bytes
    ],
)
def test_mostly_utf8_counts_valid_sequences_against_bytes_that_fail(data, expected):
    from curate.readers.base import _mostly_utf8

    assert _mostly_utf8(data) is expected
