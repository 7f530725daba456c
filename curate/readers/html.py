"""HTML pages as Markdown: markdownify on lxml's parser, ATX headings (the chunker reads ``#`` headings), lists
with code blocks kept inside their items, tables as Markdown tables; scripts, styles, forms and the site's chrome
(page header and footer, navigation, cookie banners) removed first. An article's own ``<header>`` (its ``<h1>``)
is content and stays, and so is an ``<aside>`` (a note, a warning); chrome classes (menu, sidebar) are dropped
only outside the article. The page's declared charset is read. A table inside a table cell becomes that cell's
text (Markdown has no nested tables).

For crawled web pages full of menus and boilerplate, ``input.html_main_content`` keeps only the main content,
extracted by trafilatura (the ``gristmill[web]`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import Record, decode, humanize

_DROP_TAGS = ["script", "style", "noscript", "nav", "form", "iframe", "svg", "template", "button"]
# class/id tokens that mark the page layout's chrome, dropped outside the article or main content only (a
# "menu" inside an article is the article's).
_CHROME = {"nav", "navbar", "menu", "breadcrumb", "breadcrumbs", "sidebar", "skip-link"}
# Cookie and consent banners: dropped wherever they are.
_BANNERS = {"cookie-banner", "cookies", "cookie-consent", "cookie-notice", "consent-banner", "gdpr"}
_CONTENT = ("article", "main")
WEB_INSTALL = "pip install 'gristmill[web]'"


def _inline(tag) -> str:
    return " ".join(tag.get_text(" ").split())


def _remove_chrome(soup) -> None:
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": "navigation"}):
        tag.decompose()
    # The page's header, footer and complementary column (role=complementary), not an article's own. An
    # <aside> is content (a note, a warning) unless the layout marks it as chrome.
    for tag in [*soup.find_all(["header", "footer"]), *soup.find_all(attrs={"role": "complementary"})]:
        if not tag.decomposed and tag.find_parent(_CONTENT) is None:
            tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        tokens = {t.lower() for t in tag.get("class") or []} | {(tag.get("id") or "").lower()}
        if tokens & _BANNERS or (tokens & _CHROME and tag.find_parent(_CONTENT) is None):
            tag.decompose()


MAX_DEPTH = 200  # deeper elements are unwrapped (their text kept): markdownify recurses once per level


def _flatten_deep_nesting(soup) -> None:
    """A page nested deeper than MAX_DEPTH (1,200 <div>s, generated or hostile) keeps its text: the elements below
    that depth are unwrapped instead of the converter running out of stack."""
    depth: dict[int, int] = {}
    deep = []
    for tag in soup.find_all(True):  # document order: a parent's depth is known before its children's
        level = depth.get(id(tag.parent), 0) + 1
        depth[id(tag)] = level
        if level > MAX_DEPTH:
            deep.append(tag)
    for tag in deep:
        tag.unwrap()


def _flatten_nested_tables(soup) -> None:
    for table in reversed(soup.find_all("table")):  # innermost first
        if table.find_parent(["td", "th"]) is not None:
            rows = ["; ".join(_inline(c) for c in tr.find_all(["td", "th"])) for tr in table.find_all("tr")]
            table.replace_with(" / ".join(r for r in rows if r))


_INLINE_MARKUP = ["a", "b", "strong", "i", "em", "u", "img", "span", "font"]  # kept as plain text (images dropped)


def _markdown_converter():
    import markdownify

    class Converter(markdownify.MarkdownConverter):
        """A ``|`` inside a cell is escaped, so it does not split the Markdown table's row."""

        def convert_td(self, el, text, parent_tags):
            return super().convert_td(el, text.replace("|", "\\|"), parent_tags)

        def convert_th(self, el, text, parent_tags):
            return super().convert_th(el, text.replace("|", "\\|"), parent_tags)

    return Converter(heading_style="ATX", bullets="-", escape_underscores=False, strip=_INLINE_MARKUP)


def trafilatura_module():
    try:
        import trafilatura
    except ImportError:
        raise ImportError(
            f"input.html_main_content needs trafilatura, which is not installed; install the extra: {WEB_INSTALL}"
        ) from None
    return trafilatura


def _main_content(html: str) -> str | None:
    """The page's main content as HTML (trafilatura drops menus, related links, footers), None when trafilatura
    finds none."""
    return trafilatura_module().extract(
        html, output_format="html", include_tables=True, include_formatting=True, include_comments=False
    )


def html_to_markdown(html: str, main_content: bool = False) -> tuple[str, str]:
    """(markdown text, title) of an HTML page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    title_tag = soup.find("title")
    title = _inline(title_tag) if title_tag else ""
    if not title:
        h1 = soup.find("h1")
        title = _inline(h1) if h1 else ""
    extracted = _main_content(html) if main_content else None
    if extracted:
        soup = BeautifulSoup(extracted, "lxml")
        for pre in soup.find_all("pre"):
            inner = pre.find("pre")  # trafilatura nests a code block's <pre> in an indented one
            if inner is not None:
                pre.string = inner.get_text()
    _remove_chrome(soup)
    _flatten_nested_tables(soup)
    _flatten_deep_nesting(soup)
    return _tidy(_markdown_converter().convert_soup(soup.body or soup)), title


def _tidy(markdown: str) -> str:
    """Trailing spaces off, runs of blank lines down to one."""
    lines = [line.rstrip() for line in markdown.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# Labels a page declares that browsers read as windows-1252 (the WHATWG Encoding Standard's table).
_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "windows-1252", "cp1252"}


def decode_html(data: bytes) -> tuple[str, str]:
    """(text, encoding): a byte-order mark first, then the charset the page declares (``<meta charset>`` or
    ``http-equiv``, found by BeautifulSoup's EncodingDetector) when the bytes decode with it, else the plain-text
    detection (decode). A Shift_JIS page says so, and is read so."""
    import codecs

    from bs4.dammit import EncodingDetector

    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return decode(data)
    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    if declared:
        label = declared.lower()
        label = "cp1252" if label in _AS_CP1252 else label
        try:
            name = codecs.lookup(label).name
            return data.decode(name), name
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declaration: detect instead
    return decode(data)


def read_html(path: Path, data: bytes, *, options=None, **_: object) -> Iterator[Record]:
    html, encoding = decode_html(data)
    text, title = html_to_markdown(html, main_content=bool(options is not None and options.html_main_content))
    yield Record(text=text, title=title or humanize(path.stem), meta={"format": "html", "encoding": encoding})
