"""Reader throughput: each format's reader against the plain-text reader on the same words, and against the
readers of an earlier commit.

    python bench/readers.py [--pages 200] [--repeat 3] [--baseline REV]

Writes one document per format with the same text (a page of about 300 words per page / slide / message / web
page / spreadsheet row), reads each through gristmill's reader registry, best of --repeat, and prints pages per
second, MB of file per second and the speed relative to reading the same text from a .txt file. With
``--baseline REV`` (a git revision), the readers of that revision (``git archive REV curate``) read the same
files in a child process first, and the table adds their pages per second and the ratio now / then.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tarfile
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
    files["html"] = folder / "site"  # a crawl: one page per file, with the site's menu, header and footer
    files["html"].mkdir()
    for n, page in enumerate(pages, start=1):
        half = len(page) // 2
        (files["html"] / f"page-{n}.html").write_text(
            f"<html><head><title>Page {n}</title><style>p{{margin:0}}</style></head><body>"
            "<header><nav><ul><li><a href='/'>Home</a></li><li><a href='/shop'>Shop</a></li></ul></nav></header>"
            f"<main><article><header><h1>Page {n}</h1></header><p>{' '.join(page[:half])}</p>"
            f"<h2>Details</h2><ul>{''.join(f'<li>{line}</li>' for line in page[half:-2])}</ul>"
            f"<table><tr><th>Key</th><th>Value</th></tr><tr><td>{page[-2]}</td><td>{page[-1]}</td></tr></table>"
            "</article></main><footer>© Acme Outdoor</footer></body></html>"
        )
    import pandas as pd

    files["xlsx"] = folder / "faq.xlsx"
    rows = [{"id": f"r{n}", "title": f"Row {n}", "text": " ".join(page)} for n, page in enumerate(pages, start=1)]
    pd.DataFrame(rows).to_excel(files["xlsx"], index=False)
    return files


def measure(files: dict[str, Path], repeat: int) -> dict[str, tuple[float, int, int, int]]:
    """{format: (best seconds, bytes, words read, rejects)} through the importable gristmill's readers."""
    from curate.readers import discover, read_documents
    from curate.recipe import FieldsSection

    timings = {}
    for fmt, path in files.items():
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            result = read_documents(discover([str(path)]), FieldsSection())
            best = min(best, time.perf_counter() - start)
        size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
        words = sum(len(r["text"].split()) for r in result.rows)
        timings[fmt] = (best, size, words, len(result.rejects))
    return timings


def baseline(revision: str, files: dict[str, Path], folder: Path, repeat: int) -> dict[str, tuple]:
    """The readers of ``revision``, measured on the same files in a child process."""
    code = folder / "baseline-code"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "curate"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(code, filter="data")
    out = folder / "baseline.json"
    script = (  # this module from here, gristmill's curate from the baseline's tree (first on the path)
        "import json, sys; from pathlib import Path; sys.path.append(sys.argv[2]);"
        "from bench.readers import measure; sys.path.insert(0, sys.argv[1]);"
        "files = {k: Path(v) for k, v in json.loads(sys.argv[3]).items()};"
        "Path(sys.argv[5]).write_text(json.dumps(measure(files, int(sys.argv[4]))))"
    )
    paths = json.dumps({fmt: str(p) for fmt, p in files.items()})
    subprocess.run([sys.executable, "-c", script, str(code), str(REPO), paths, str(repeat), str(out)], check=True)
    return {fmt: tuple(v) for fmt, v in json.loads(out.read_text()).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also time the readers of this git revision")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    pages = page_texts(args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        files = build(Path(tmp), pages)
        before = baseline(args.baseline, files, Path(tmp), args.repeat) if args.baseline else {}
        timings = measure(files, args.repeat)
    base = timings["txt"][0]
    columns = ["format", "file MB", "words read", "pages/s", "MB/s", "speed vs .txt"]
    if before:
        columns += [f"pages/s at {args.baseline}", f"now / {args.baseline}"]
    table = Table(*columns, title=f"readers, {args.pages} pages each")
    for fmt, (seconds, size, words, rejects) in timings.items():
        note = f" ({rejects} rejected)" if rejects else ""
        cells = [
            fmt + note,
            f"{size / 1e6:.2f}",
            str(words),
            f"{args.pages / seconds:.0f}",
            f"{size / 1e6 / seconds:.2f}",
            f"{base / seconds:.3f}x",
        ]
        if before:
            then_seconds, _, then_words, then_rejects = before[fmt]
            read_then = then_rejects == 0 and then_words > 0
            cells += [
                f"{args.pages / then_seconds:.0f}" if read_then else "not read",
                f"{then_seconds / seconds:.2f}x" if read_then else "",
            ]
        table.add_row(*cells)
    Console().print(table)


if __name__ == "__main__":
    main()
