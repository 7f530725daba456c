"""Write the sample PDF, DOCX and e-mail of Acme Outdoor, reproducibly (same bytes on every run).

    python sample_data/make_documents.py

The PDF is written by a minimal PDF writer (text only, Helvetica with bold Helvetica headings set larger, one
content stream per page) so that the file needs no PDF library to make and carries a real text layer with a
running header and footer on every page. The DOCX is written with python-docx (headings, a bulleted list, a numbered list and a table); its
timestamps are fixed so the bytes do not change. The tests build their fixtures with the same functions.
"""

from __future__ import annotations

import datetime
import json
import io
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


# A line written as "# Title" or "## Section" is set as a heading: (font, size, leading) per level; body text is
# 11pt Helvetica. The "#" marks are not printed: the reader has to find headings from the type alone.
PDF_STYLES = {0: (b"/F1", 11, 14), 1: (b"/F2", 18, 26), 2: (b"/F2", 14, 22), 3: (b"/F2", 11, 16)}


def _pdf_line(line: str) -> bytes:
    level = len(line) - len(line.lstrip("#")) if line.startswith("#") and line.lstrip("#").startswith(" ") else 0
    font, size, leading = PDF_STYLES[min(level, 3)]
    text = line.lstrip("#").strip() if level else line
    return b"%s %d Tf %d TL T* " % (font, size, leading) + _pdf_string(text) + b" Tj"


def pdf_bytes(pages: list[list[str]], title: str = "", header: str = "", footer: str = "") -> bytes:
    """A text-only PDF: each page a list of lines ("# " and "## " lines are bold headings); ``header`` and
    ``footer`` (with {page} and {pages}) on every page. A page with no lines and no header/footer has no text
    layer (a stand-in for a scanned page)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree exists
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for number, lines in enumerate(pages, start=1):
        ops = [b"BT /F1 9 Tf 72 760 Td", _pdf_string(header.format(page=number, pages=len(pages))) + b" Tj ET"] if header else []
        if lines:
            ops += [b"BT 72 734 Td"] + [_pdf_line(line) for line in lines] + [b"ET"]
        if footer:
            ops += [b"BT /F1 9 Tf 72 40 Td", _pdf_string(footer.format(page=number, pages=len(pages))) + b" Tj ET"]
        stream = b"\n".join(ops)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>" % (pages_id, content, font, bold)
            )
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    info = add(b"<< /Title " + _pdf_string(title) + b" /Producer (gristmill sample_data) >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % off for off in offsets)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\n" % (len(objects) + 1, catalog, info))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


QUICK_START = [
    [
        "# Trailhead 2 Tent Quick Start",
        "",
        "This guide gets you from the box to a pitched tent in about five minutes.",
        "Read it once at home and pitch the tent in your garden before your first trip.",
        "",
        "## Before you leave home",
        "Check that the bag holds the inner tent, the rain fly, the hub pole set,",
        "ten stakes and four guylines. Seal the seams only if the fly is older than",
        "five years; new flies are taped at the factory.",
    ],
    [
        "## Pitching in wind",
        "Stake the windward corners first and keep the fly packed until the inner",
        "tent stands. Point the narrow end into the wind and tension the guylines",
        "at an angle of about 45 degrees. In gusts above 60 km/h, add the two",
        "extra stakes to the vestibule tie-outs.",
        "",
        "## Striking the tent",
        "Shake out sand and leaves, fold the poles from the middle outwards and",
        "dry the fly at home within 24 hours to protect its coating.",
    ],
    [
        "## Spare parts and repairs",
        "Replacement pole sections, stakes and zip sliders are free during the",
        "lifetime warranty. Order them from the repair centre with your order",
        "number. A cracked pole can be splinted with the repair sleeve until then.",
    ],
]


def write_quick_start(path: Path) -> None:
    path.write_bytes(
        pdf_bytes(
            QUICK_START,
            title="Trailhead 2 Tent Quick Start",
            header="Acme Outdoor | Trailhead 2 Quick Start Guide",
            footer="Page {page} of {pages} | acme-outdoor.example",
        )
    )


def docx_bytes(build) -> bytes:
    """A .docx made by ``build(document)``, with fixed timestamps in its parts so the bytes are stable."""
    import docx

    document = docx.Document()
    fixed = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    document.core_properties.created = fixed
    document.core_properties.modified = fixed
    build(document)
    raw = io.BytesIO()
    document.save(raw)
    # Rewrite the zip with fixed entry dates (python-docx stamps the current time on every entry).
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            entry = zipfile.ZipInfo(item.filename, date_time=(2026, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, src.read(item.filename))
    return out.getvalue()


def _travel_policy(document) -> None:
    document.core_properties.title = "Travel and Expenses Policy"
    document.add_heading("Travel and Expenses Policy", level=1)
    document.add_paragraph(
        "This policy explains what Acme Outdoor pays for when employees travel for work, and how to claim it."
    )
    document.add_heading("Booking travel", level=2)
    document.add_paragraph(
        "Book flights and hotels through the travel portal at least 14 days ahead. Economy class is the rule for "
        "flights under six hours; premium economy is allowed on longer flights."
    )
    for item in ("Trains are preferred for trips under four hours.", "Rental cars need a manager's approval."):
        document.add_paragraph(item, style="List Bullet")
    document.add_heading("Daily allowances", level=2)
    document.add_paragraph("Meals are reimbursed up to the daily allowance of the destination:")
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Destination", "Meals per day", "Hotel per night"), strict=True):
        cell.text = text
    for row in (("United States", "75 USD", "220 USD"), ("Canada", "90 CAD", "250 CAD"), ("Netherlands", "65 EUR", "180 EUR")):
        cells = table.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = text
    document.add_heading("Claiming expenses", level=2)
    for step in (
        "Photograph every receipt on the day you get it.",
        "Submit the claim in the expenses app within 30 days of your return.",
        "Your manager approves it, and payment follows with the next salary run.",
    ):
        document.add_paragraph(step, style="List Number")


def _word_list(document, num_id: int, formats: tuple[str, ...]) -> None:
    """Add list numbering ``num_id`` to the document, as Word writes it: an abstract numbering with one format
    per level (decimal, lowerLetter, bullet, ...) and a ``w:num`` that points at it."""
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    numbering = document.part.numbering_part.element
    levels = "".join(
        f'<w:lvl w:ilvl="{i}"><w:start w:val="1"/><w:numFmt w:val="{fmt}"/><w:lvlText w:val="%{i + 1}."/></w:lvl>'
        for i, fmt in enumerate(formats)
    )
    abstract = parse_xml(f'<w:abstractNum {nsdecls("w")} w:abstractNumId="{num_id}">{levels}</w:abstractNum>')
    numbering.insert(0, abstract)  # abstract numberings come before the w:num elements
    numbering.append(
        parse_xml(f'<w:num {nsdecls("w")} w:numId="{num_id}"><w:abstractNumId w:val="{num_id}"/></w:num>')
    )


def _list_item(document, text: str, num_id: int, level: int = 0) -> None:
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    para = document.add_paragraph(text, style="List Paragraph")
    para._p.get_or_add_pPr().append(
        parse_xml(f'<w:numPr {nsdecls("w")}><w:ilvl w:val="{level}"/><w:numId w:val="{num_id}"/></w:numPr>')
    )


def warranty_procedure(document) -> None:
    """A Word document with the list numbering Word itself writes (numbered paragraphs in the List Paragraph
    style, a lettered sub-list, a second list that starts again at 1) and a table with merged cells: the test
    document for the DOCX reader."""
    _word_list(document, 90, ("decimal", "lowerLetter"))
    _word_list(document, 91, ("decimal",))
    document.add_heading("Warranty claims", level=1)
    _list_item(document, "Find the serial number.", 90)
    _list_item(document, "On the tent bag.", 90, 1)
    _list_item(document, "On the inner tent label.", 90, 1)
    _list_item(document, "Fill in the claim form.", 90)
    _list_item(document, "Is it the fly or the inner tent?", 90, 1)
    document.add_paragraph("Then send the part back:")
    _list_item(document, "Pack it dry.", 91)
    _list_item(document, "Print the label.", 91)
    table = document.add_table(rows=4, cols=3)
    for row, cells in zip(
        table.rows,
        (("Part", "Warranty", "Notes"), ("Poles", "Lifetime", ""), ("Fly", "2 years", "Seams taped"),
         ("Inner tent", "", "Mesh")),
        strict=True,
    ):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    table.cell(1, 1).merge(table.cell(1, 2))  # "Lifetime" across Warranty and Notes
    table.cell(2, 1).merge(table.cell(3, 1))  # "2 years" for the fly and the inner tent


ESCALATION = """From: Support Team <support@acme-outdoor.example>
To: Warehouse Team <warehouse@acme-outdoor.example>
Subject: Escalation: damaged tents from the March batch
Date: Tue, 03 Mar 2026 10:15:00 -0700
Message-ID: <escalation-2026-03-03@acme-outdoor.example>
Content-Type: text/plain; charset="utf-8"

Hi all,

Since Friday we have had nine returns of Trailhead 2 tents with a torn fly near the
vestibule zip. All of them come from the March batch. Please hold the remaining
stock from that batch until quality has inspected it, and send replacements from
the February batch instead.

Customers who report the problem get a replacement shipped by express at no cost,
as the returns policy says for items that arrive damaged.

Thanks,
Support

On Mon, 02 Mar 2026 at 16:40, Warehouse Team wrote:
> Can you tell us which batch the returns come from?
> We need the lot numbers before we can stop shipping.
"""


# A year of support tickets, as a helpdesk export: each ticket is a problem, a detail and a request, drawn
# from pools per category with a seeded generator, so the file is the same on every run.
TICKET_CATEGORIES = {
    "order": (
        ["Order {order} needs a change", "Wrong item in order {order}", "Cancel order {order}"],
        ["I placed order {order} yesterday for the {product}.", "My order {order} with the {product} was confirmed."],
        ["I picked the wrong size and want a different one.", "I ordered two by mistake and need just one.",
         "The colour I chose is not the one I wanted."],
        ["Can you change it before it ships?", "Please cancel the extra item.", "What are my options now?"],
    ),
    "shipping": (
        ["Parcel for {order} is late", "Tracking stuck on {order}", "Delivery to the wrong address"],
        ["The {product} from order {order} was due on Friday.", "Order {order} shows as shipped for a week."],
        ["Tracking has not updated in five days.", "The courier says the parcel was delivered but nothing came.",
         "The delivery note lists a street I have never lived on."],
        ["Can you check with the carrier?", "Please send a replacement or a refund.", "When will it arrive?"],
    ),
    "returns": (
        ["Return for {order}", "Return label problem", "Refund not received for {order}"],
        ["I sent back the {product} from order {order} two weeks ago.", "I want to return the {product}."],
        ["The prepaid label will not scan at the post office.", "The refund has not reached my card yet.",
         "It does not fit and the tags are still on."],
        ["How long does the refund take?", "Can you send a new label?", "Please confirm you received it."],
    ),
    "warranty": (
        ["{product} failed after a few trips", "Warranty claim for the {product}", "Seam opened on {product}"],
        ["My {product} is about eight months old.", "I bought the {product} last spring."],
        ["A seam along the hood started to leak.", "The zip separates at the bottom.",
         "The buckle cracked in cold weather."],
        ["Is this covered by the lifetime warranty?", "Can you repair it?", "What do I need to send you?"],
    ),
    "billing": (
        ["Charged twice for {order}", "Wrong price on {order}", "Invoice needed for {order}"],
        ["I was billed for order {order} with the {product}.", "My statement shows order {order} twice."],
        ["The amount is higher than the price on the website.", "The discount code was not applied.",
         "My company needs an invoice with our tax number."],
        ["Please refund the difference.", "Can you send a corrected invoice?", "Who can I talk to about this?"],
    ),
    "account": (
        ["Cannot sign in", "Trail Club credit missing", "Change my account email"],
        ["I have been a Trail Club member since last year.", "I use the account for all my orders."],
        ["The password reset link has expired twice.", "My store credit from the last order is missing.",
         "I moved and need to update my details."],
        ["Can you help me get back in?", "Please add the missing credit.", "How do I change it myself?"],
    ),
    "rental": (
        ["Rental deposit not returned", "Extend my {product} rental", "Rental gear damaged"],
        ["I rented the {product} at the Denver store.", "I picked up a rented {product} in Boulder."],
        ["The deposit is still on my card after a week.", "I would like to keep it three more days.",
         "A strap was already torn when I got it."],
        ["When will the deposit be released?", "What will the extension cost?", "Will I be charged for it?"],
    ),
}
TICKET_PRODUCTS = ["Trailhead 2 Tent", "Storm Shell Jacket", "Alpine 0 Sleeping Bag", "Ridgeline 55 Pack",
                   "Snowshoes", "Canyon Hiking Boots", "Ember Camp Stove", "Drift Fleece"]


def support_tickets(n: int = 240) -> list[dict]:
    import random

    rng = random.Random(2026)
    tickets = []
    for i in range(n):
        category = sorted(TICKET_CATEGORIES)[i % len(TICKET_CATEGORIES)]
        subjects, openings, problems, asks = TICKET_CATEGORIES[category]
        values = {"order": f"A-{61000 + i * 7}", "product": rng.choice(TICKET_PRODUCTS)}
        k = rng.randrange(len(problems))  # the subject names the problem
        body = " ".join([rng.choice(openings), problems[k], rng.choice(asks)]).format(**values)
        tickets.append({
            "ticket_id": f"T-{3001 + i}",
            "subject": subjects[k].format(**values),
            "body": body,
            "priority": rng.choices(["low", "normal", "high", "urgent"], [3, 6, 2, 1])[0],
            "category": category,
            "channel": rng.choice(["email", "phone", "chat", "web"]),
            "product": values["product"] if "{product}" in body or rng.random() < 0.3 else "",
            "created": f"2026-{1 + i % 12:02d}-{1 + (i * 5) % 28:02d}",
        })
    return tickets


def main() -> None:
    docs = HERE / "docs"
    (docs / "manuals").mkdir(parents=True, exist_ok=True)
    (docs / "policies").mkdir(parents=True, exist_ok=True)
    write_quick_start(docs / "manuals" / "trailhead-2-quick-start.pdf")
    (docs / "policies" / "travel-and-expenses.docx").write_bytes(docx_bytes(_travel_policy))
    (docs / "support" / "escalation-damaged-tents.eml").write_text(ESCALATION, encoding="utf-8")
    with open(docs / "support" / "tickets-export-2026.jsonl", "w", encoding="utf-8") as f:
        for ticket in support_tickets():
            f.write(json.dumps(ticket) + "\n")


if __name__ == "__main__":
    main()
