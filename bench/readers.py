"""Reader throughput: each format's reader against the plain-text reader (the baseline) on the same words.

    python bench/readers.py [--pages 200] [--repeat 3]

Writes one document per format with the same text (a page of about 300 words per page / slide / message),
reads each through gristmill's reader registry, best of --repeat, and prints pages per second, MB of file per
second and the speed relative to reading the same text from a .txt file.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sample_data.make_documents import docx_bytes, pdf_bytes  # noqa: E402


def page_texts(n_pages: int, seed: int = 0) -> list[list[str]]:
    words = (REPO / "sample_data" / "docs" / "returns-and-refunds.md").read_text().split()
    rng = random.Random(seed)
    pages = []
    for _ in range(n_pages):
        page_words = rng.choices(words, k=300)
        pages.append([" ".join(page_words[i : i + 12]) for i in range(0, 300, 12)])
    return pages


def build(folder: Path, pages: list[list[str]]) -> dict[str, Path]:
    from pptx import Presentation

    files = {}
    files["txt"] = folder / "doc.txt"
    files["txt"].write_text("\n\n".join("\n".join(p) for p in pages))
    files["pdf"] = folder / "doc.pdf"
    files["pdf"].write_bytes(pdf_bytes(pages, header="Acme Outdoor", footer="Page {page} of {pages}"))

    def build_docx(document):
        for n, page in enumerate(pages, start=1):
            document.add_heading(f"Section {n}", level=2)
            document.add_paragraph(" ".join(page))

    files["docx"] = folder / "doc.docx"
    files["docx"].write_bytes(docx_bytes(build_docx))
    deck = Presentation()
    for n, page in enumerate(pages, start=1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {n}"
        slide.placeholders[1].text_frame.text = " ".join(page)
    raw = io.BytesIO()
    deck.save(raw)
    files["pptx"] = folder / "doc.pptx"
    files["pptx"].write_bytes(raw.getvalue())
    messages = [
        f"From a{n}@example.com Mon Mar  2 10:00:00 2026\nFrom: a{n}@example.com\nSubject: Message {n}\n"
        f"Message-ID: <m{n}@example.com>\nContent-Type: text/plain; charset=utf-8\n\n" + "\n".join(page) + "\n"
        for n, page in enumerate(pages, start=1)
    ]
    files["mbox"] = folder / "inbox.mbox"
    files["mbox"].write_text("\n".join(messages))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from curate.readers import discover, read_documents
    from curate.recipe import FieldsSection

    pages = page_texts(args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        files = build(Path(tmp), pages)
        timings = {}
        for fmt, path in files.items():
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = read_documents(discover([str(path)]), FieldsSection())
                best = min(best, time.perf_counter() - start)
            words = sum(len(r["text"].split()) for r in result.rows)
            timings[fmt] = (best, path.stat().st_size, words, len(result.rejects))
    base = timings["txt"][0]
    table = Table(
        "format",
        "file MB",
        "words read",
        "pages/s",
        "MB/s",
        "speed vs .txt",
        title=f"readers, {args.pages} pages each",
    )
    for fmt, (seconds, size, words, rejects) in timings.items():
        note = f" ({rejects} rejected)" if rejects else ""
        table.add_row(
            fmt + note,
            f"{size / 1e6:.2f}",
            str(words),
            f"{args.pages / seconds:.0f}",
            f"{size / 1e6 / seconds:.2f}",
            f"{base / seconds:.3f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
