"""PDF, DOCX, PPTX and e-mail readers: structure, provenance, and a clear reject for each bad file."""

from __future__ import annotations

import io
import json

import pytest

from curate.executors.memory import run_stage_in_memory
from curate.readers import discover, read_documents
from curate.recipe import FieldsSection
from curate.stages import get_stage
from sample_data.make_documents import docx_bytes, pdf_bytes
from tests.conftest import require, write


def read(path):
    return read_documents(discover([str(path)]), FieldsSection())


def one(path) -> dict:
    result = read(path)
    assert not result.rejects, result.rejects
    (row,) = result.rows
    return row


PAGES = [
    ["Returns Guide", "", "You can return items within 60 days.", "Refunds take 5 to 10 days."],
    ["Exchanges", "", "We do not process direct exchanges.", "Return the item and order again."],
    ["Contact", "", "Write to the returns team for help."],
    ["Appendix", "", "Forms are in the member area."],
]


def test_pdf_pages_in_order_with_running_header_and_footer_removed(tmp_path):
    require("pypdf")
    write(
        tmp_path / "guide.pdf",
        pdf_bytes(PAGES, title="Returns Guide", header="ACME CONFIDENTIAL", footer="Page {page} of {pages}"),
    )
    row = one(tmp_path / "guide.pdf")
    meta = json.loads(row["meta"])
    assert meta["pages"] == 4 and row["title"] == "Returns Guide"
    assert "ACME CONFIDENTIAL" not in row["text"] and "Page 2 of 4" not in row["text"]
    assert (
        row["text"].index("within 60 days") < row["text"].index("direct exchanges") < row["text"].index("member area")
    )
    assert "<!-- page 3 -->" in row["text"]
    # Page provenance survives chunking (markers leave the text, pages go to meta).
    chunk = get_stage("chunk.sections")
    kept, _ = run_stage_in_memory(chunk, chunk.config(max_words=12, overlap_words=0), [row])
    pages = [json.loads(r["meta"])["chunk"]["pages"] for r in kept]
    assert pages[0] == [1, 1] and pages[-1] == [4, 4] and all("<!--" not in r["text"] for r in kept)


def test_short_pdf_keeps_a_line_that_is_on_two_pages_only(tmp_path):
    require("pypdf")
    write(tmp_path / "two.pdf", pdf_bytes(PAGES[:2], header="Same header"))
    assert "Same header" in one(tmp_path / "two.pdf")["text"]  # fewer than 3 pages: nothing is "running"


def test_bad_pdfs_are_rejected_with_reasons(tmp_path):
    pypdf = require("pypdf")
    good = pdf_bytes(PAGES[:1])
    write(tmp_path / "corrupt.pdf", good[: len(good) // 3])
    write(tmp_path / "scan.pdf", pdf_bytes([[], []]))
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(good)))
    writer.encrypt("s3cret")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    write(tmp_path / "locked.pdf", encrypted.getvalue())
    reasons = {r["source"]: (r["reason"], r["detail"]) for r in read(tmp_path).rejects}
    assert reasons["corrupt.pdf"][0] == "corrupt_file"
    assert reasons["scan.pdf"] == ("no_text_layer", "2 page(s) and no text layer (a scan?); OCR it first")
    assert reasons["locked.pdf"][0] == "encrypted_file" and "password" in reasons["locked.pdf"][1]


def _policy(document):
    document.add_heading("Expenses", level=1)
    document.add_paragraph("Claims are paid monthly.")
    document.add_heading("Limits", level=2)
    document.add_paragraph("Taxi rides are covered.", style="List Bullet")
    document.add_paragraph("Minibar is not covered.", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Item", "Limit | cap"
    table.rows[1].cells[0].text, table.rows[1].cells[1].text = "Meals", "75 USD"
    document.add_paragraph("First step.", style="List Number")
    document.add_paragraph("Second step.", style="List Number")


def test_docx_headings_lists_and_tables_as_markdown(tmp_path):
    require("docx")
    write(tmp_path / "policy.docx", docx_bytes(_policy))
    row = one(tmp_path / "policy.docx")
    assert row["title"] == "Expenses"
    assert row["text"] == (
        "# Expenses\n\nClaims are paid monthly.\n\n## Limits\n\n- Taxi rides are covered.\n- Minibar is not covered."
        "\n\n| Item | Limit \\| cap |\n| --- | --- |\n| Meals | 75 USD |\n\n1. First step.\n2. Second step."
    )
    assert docx_bytes(_policy) == docx_bytes(_policy), "the fixture is reproducible"


def test_bad_docx_files(tmp_path):
    require("docx")
    write(tmp_path / "broken.docx", b"PK\x03\x04 not really a zip")
    write(tmp_path / "empty.docx", docx_bytes(lambda document: None))
    reasons = {r["source"]: r["reason"] for r in read(tmp_path).rejects}
    assert reasons == {"broken.docx": "corrupt_file", "empty.docx": "empty_document"}


def test_pptx_slide_titles_become_headings(tmp_path):
    pptx = require("pptx")
    from pptx.util import Inches

    deck = pptx.Presentation()
    for title, bullets in (
        ("Q3 Returns", ["Return rate fell to 4%", "Most returns: sizing"]),
        ("Next steps", ["Better size charts"]),
    ):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for extra in bullets[1:]:
            body.add_paragraph().text = extra
    table_slide = deck.slides.add_slide(deck.slide_layouts[5])
    table_slide.shapes.title.text = "Numbers"
    table = table_slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text, table.cell(1, 0).text, table.cell(1, 1).text = (
        "Month",
        "Rate",
        "July",
        "4%",
    )
    raw = io.BytesIO()
    deck.save(raw)
    write(tmp_path / "review.pptx", raw.getvalue())
    row = one(tmp_path / "review.pptx")
    assert row["title"] == "Q3 Returns" and json.loads(row["meta"])["pages"] == 3
    assert "# Q3 Returns\n\n- Return rate fell to 4%\n- Most returns: sizing" in row["text"]
    assert "<!-- page 2 -->\n# Next steps" in row["text"]
    assert "| Month | Rate |\n| --- | --- |\n| July | 4% |" in row["text"]


EML = """From: Ann <ann@example.com>
To: support@acme-outdoor.example
Subject: Broken zip
Message-ID: <m1@example.com>
Content-Type: text/plain; charset="utf-8"

The zip on my jacket broke after two weeks.
Can I get it repaired?

On Mon, 2 Mar 2026, Support wrote:
> Thanks for your message.
> We will look into it.
"""


def test_eml_subject_body_and_quoted_reply_stripped(tmp_path):
    write(tmp_path / "m.eml", EML)
    row = one(tmp_path / "m.eml")
    assert row["title"] == "Broken zip" and row["doc_id"] == "m1@example.com"
    assert row["text"] == "The zip on my jacket broke after two weeks.\nCan I get it repaired?"


def test_mbox_one_document_per_message_and_empty_ones_rejected(tmp_path):
    html = (
        EML.replace("Broken zip", "HTML only")
        .replace("<m1@", "<m2@")
        .replace(
            'text/plain; charset="utf-8"\n\nThe zip on my jacket broke after two weeks.\nCan I get it repaired?',
            'text/html; charset="utf-8"\n\n<p>Please <b>call</b> me back.</p>',
        )
    )
    quoted_only = EML.replace("<m1@", "<m3@").replace(
        "The zip on my jacket broke after two weeks.\nCan I get it repaired?\n", "> only a quote\n"
    )
    box = "".join(f"From sender@example.com Mon Mar  2 10:00:00 2026\n{m}\n" for m in (EML, html, quoted_only))
    write(tmp_path / "inbox.mbox", box)
    result = read(tmp_path)
    assert [r["doc_id"] for r in result.rows] == ["m1@example.com", "m2@example.com"]
    assert result.rows[1]["text"] == "Please call me back."
    assert [(r["reason"], r["id"]) for r in result.rejects] == [("empty_document", "inbox.mbox:3")]


def test_sample_pdf_and_docx_are_reproducible(tmp_path):
    require("docx")
    from sample_data import make_documents

    make_documents.write_quick_start(tmp_path / "q.pdf")
    shipped = make_documents.HERE / "docs" / "manuals" / "trailhead-2-quick-start.pdf"
    assert (tmp_path / "q.pdf").read_bytes() == shipped.read_bytes()
    shipped_docx = make_documents.HERE / "docs" / "policies" / "travel-and-expenses.docx"
    assert make_documents.docx_bytes(make_documents._travel_policy) == shipped_docx.read_bytes()


@pytest.mark.parametrize("name", ["empty.pdf", "empty.eml"])
def test_empty_files_of_each_format(tmp_path, name):
    write(tmp_path / name, b"")
    assert [r["reason"] for r in read(tmp_path).rejects] == ["empty_file"]


def test_pdf_headings_come_from_type_size_and_weight(tmp_path):
    require("pypdf")
    pages = [
        [
            "# Returns Guide",
            "You can return items within 60 days of delivery.",
            "### Refund timing",
            "Refunds take 5 to 10 days.",
            "### This bold line is a sentence, so not a heading.",
            "More body text here.",
        ],
        ["## Exchanges and", "## replacements", "We do not process direct exchanges.", "Order the item again."],
    ]
    write(tmp_path / "guide.pdf", pdf_bytes(pages))
    row = one(tmp_path / "guide.pdf")
    lines = row["text"].splitlines()
    # 18pt is level 1, 14pt level 2, bold at the 11pt body size level 3; a wrapped heading is joined.
    assert "# Returns Guide" in lines and "### Refund timing" in lines and "## Exchanges and replacements" in lines
    assert "This bold line is a sentence, so not a heading." in lines
    assert json.loads(row["meta"])["headings"] == 3 and row["title"] == "Returns Guide"
    chunk = get_stage("chunk.sections")
    kept, _ = run_stage_in_memory(chunk, chunk.config(), [row])
    assert [r["section"] for r in kept] == [
        "Returns Guide",
        "Returns Guide > Refund timing",
        "Returns Guide > Exchanges and replacements",
    ]


def test_pdf_set_all_in_one_type_or_all_bold_has_no_headings(tmp_path):
    require("pypdf")
    write(tmp_path / "plain.pdf", pdf_bytes(PAGES))
    write(tmp_path / "bold.pdf", pdf_bytes([["### " + line for line in page if line] for page in PAGES]))
    for name in ("plain.pdf", "bold.pdf"):
        row = one(tmp_path / name)
        assert "#" not in row["text"].replace("<!-- page", "") and json.loads(row["meta"])["headings"] == 0


def test_pdf_text_size_includes_the_text_matrix():
    from curate.readers.pdf import _size

    identity = [1, 0, 0, 1, 0, 0]
    assert _size(1, identity, [18, 0, 0, 18, 72, 700]) == 18  # "1 Tf" and a Tm that scales by 18
    assert _size(12, [2, 0, 0, 2, 0, 0], identity) == 24  # a page drawn at twice the size
    assert _size(10, identity, [0, 10, -10, 0, 0, 0]) == 100  # rotated text keeps its height


def test_sample_manual_chunks_carry_its_heading_path():
    from sample_data.make_documents import HERE

    row = one(HERE / "docs" / "manuals" / "trailhead-2-quick-start.pdf")
    chunk = get_stage("chunk.sections")
    kept, _ = run_stage_in_memory(chunk, chunk.config(), [row])
    assert [r["section"] for r in kept] == [
        "Trailhead 2 Tent Quick Start",
        "Trailhead 2 Tent Quick Start > Before you leave home",
        "Trailhead 2 Tent Quick Start > Pitching in wind",
        "Trailhead 2 Tent Quick Start > Striking the tent",
        "Trailhead 2 Tent Quick Start > Spare parts and repairs",
    ]


def test_docx_word_list_numbering_and_merged_cells(tmp_path):
    require("docx")
    from sample_data.make_documents import warranty_procedure

    write(tmp_path / "warranty.docx", docx_bytes(warranty_procedure))
    assert one(tmp_path / "warranty.docx")["text"] == (
        "# Warranty claims\n\n"
        "1. Find the serial number.\n   a. On the tent bag.\n   b. On the inner tent label.\n"
        "2. Fill in the claim form.\n   a. Is it the fly or the inner tent?\n\n"  # the sub-list starts again
        "Then send the part back:\n\n"
        "1. Pack it dry.\n2. Print the label.\n\n"  # a second list numbers from 1
        "| Part | Warranty | Notes |\n| --- | --- | --- |\n"
        "| Poles | Lifetime |  |\n"  # merged across two columns: once
        "| Fly | 2 years | Seams taped |\n"
        "| Inner tent |  | Mesh |"  # merged down two rows: once
    )


@pytest.mark.parametrize(
    ("fmt", "numbers", "labels"),
    [
        ("lowerLetter", [1, 2, 26, 27], ["a.", "b.", "z.", "aa."]),
        ("upperRoman", [1, 4, 9, 14], ["I.", "IV.", "IX.", "XIV."]),
        ("bullet", [1, 2], ["-", "-"]),
        ("chineseCounting", [3], ["3."]),  # a format Markdown has no form for: decimal
    ],
)
def test_docx_list_labels(fmt, numbers, labels):
    from curate.readers.office import _list_label

    assert [_list_label(fmt, n) for n in numbers] == labels


def test_docx_content_controls_are_read(tmp_path):
    """Block and inline content controls (w:sdt: a form's fields, a template's blocks) were skipped before."""
    require("docx")
    from docx.oxml import parse_xml

    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'

    def build(document):
        document.add_heading("Warranty", level=1)
        body = document.element.body
        block = parse_xml(
            f"<w:sdt {ns}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>Tents carry a two-year warranty.</w:t></w:r></w:p>"
            "</w:sdtContent></w:sdt>"
        )
        inline = parse_xml(
            f"<w:p {ns}><w:r><w:t xml:space='preserve'>Claims go to </w:t></w:r><w:sdt><w:sdtPr/><w:sdtContent>"
            "<w:r><w:t>the returns desk</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t>.</w:t></w:r></w:p>"
        )
        body.insert(len(body) - 1, block)  # before the section properties
        body.insert(len(body) - 1, inline)

    write(tmp_path / "warranty.docx", docx_bytes(build))
    row = one(tmp_path / "warranty.docx")
    assert row["text"] == "# Warranty\n\nTents carry a two-year warranty.\n\nClaims go to the returns desk."
