"""Questions that read as a person would write them, offline: words cased as the documents write them mid-sentence,
titles referred to with the right article, and questions about a section's content where its text states one
fact clearly (a number, a definition, a procedure, a table cell), answered with the sentences that state it.

Rules, not a model: each pattern below matches a common way documents state a fact, and a section none of them
matches is asked about its topic, answered with the whole section (qa.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from curate.text import FUNCTION_WORDS, markdown_blocks, split_sentences

_WORD = re.compile(r"[A-Za-z][\w'’-]*")
_MID_SENTENCE = re.compile(r"(?<=[a-z0-9,;:)] )[A-Za-z][\w'’-]*")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")

# Titles that name a kind of document take "the" ("the employee handbook"); others are a page's name.
_DOCUMENT_NOUNS = frozenset(
    "handbook guide policy policies manual manuals faq faqs documentation docs page wiki overview agreement terms "
    "notes readme catalog catalogue procedure procedures playbook charter standards guidelines rules reference "
    "specification sheet report plan instructions conditions".split()
)


def _prose_line(line: str) -> bool:
    """A line of running text: not a heading, a table row, or a title-cased line (a link list, a caption)."""
    if line.lstrip().startswith(("#", "|")):
        return False
    long = [w for w in _WORD.findall(line) if len(w) > 3]
    return bool(long) and sum(w[0].isupper() for w in long) < 0.6 * len(long)


class Truecaser:
    """How the documents write a word in the middle of a sentence: "Performance Reviews" reads "performance
    reviews" where the text writes them in lower case, and "Kandji" stays as it is. Acronyms stay upper case."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.lower: Counter[str] = Counter()
        self.capital: Counter[str] = Counter()
        for text in texts:
            for line in _LINK.sub(r"\1", text).split("\n"):
                if not _prose_line(line):
                    continue
                for word in _MID_SENTENCE.findall(line):
                    (self.lower if word[0].islower() else self.capital)[word.lower()] += 1

    def word(self, word: str) -> str:
        key = word.lower()
        if not word[0].isupper() or (len(word) > 1 and word.isupper()) or any(c.isupper() for c in word[1:]):
            return word  # lower already, an acronym (QA, HR) or a name with inner capitals (GitHub)
        if key in FUNCTION_WORDS or self.lower[key] > self.capital[key]:
            return key
        return word

    def phrase(self, text: str) -> str:
        """Each word as the documents write it, except that a run of capitalised words one of which stays
        capitalised is a name and stays whole ("Long Term Disability", "Customer Support Leadership")."""
        out, pos = [], 0
        for run in re.finditer(r"[A-Z][\w'’-]*(?: [A-Z][\w'’-]*)*", text):
            out.append(_WORD.sub(lambda m: self.word(m.group(0)), text[pos : run.start()]))
            cased = [self.word(w) for w in run.group(0).split()]
            whole = len(cased) > 1 and any(c[0].isupper() for c in cased)  # one name word: the run is a name
            out.append(run.group(0) if whole else " ".join(cased))
            pos = run.end()
        return "".join(out) + _WORD.sub(lambda m: self.word(m.group(0)), text[pos:])

    def sentence_start(self, text: str) -> str:
        """Words that began a sentence, moved inside a question: capitalised only where the documents always
        write them so."""
        head, _, rest = text.partition(" ")
        key = head.lower()
        keep = head.isupper() or any(c.isupper() for c in head[1:]) or self.capital[key] > self.lower[key]
        return self.phrase(" ".join(filter(None, [head if keep else key, rest])))

    def knows(self, word: str) -> bool:
        return bool(self.lower[word.lower()] or self.capital[word.lower()])


def plain(text: str) -> str:
    """Markdown links and emphasis as their text."""
    return _EMPHASIS.sub(r"\2", _LINK.sub(r"\1", text)).strip()


def title_ref(title: str, casing: Truecaser) -> str:
    """How a question names a document: "the employee handbook", or a page by its name ('the "How We Work"
    page'): a title that is not a kind of document would read wrongly with an article ("the Our Internal
    Systems")."""
    title = " ".join(plain(title).split()).strip(" .:")
    if not title:
        return "the documentation"
    words = title.split()
    if words[-1].lower() in _DOCUMENT_NOUNS:
        if words[0].lower() in ("the", "our", "your", "my", "a", "an"):
            words = words[1:]
        return "the " + casing.phrase(" ".join(words)) if words else "the documentation"
    return f'the "{title}" page'


def topic_phrase(topic: str, casing: Truecaser) -> str:
    """A heading as a phrase inside a question: cased as the text writes it, a leading "our"/"your" read as
    "the" (the asker is not the author)."""
    words = plain(topic).strip(" .:").split()
    if len(words) > 1 and words[0].lower() in ("our", "your", "my"):
        words = ["the", *words[1:]]
    return casing.phrase(" ".join(words))


def names_title(topic: str, title: str) -> bool:
    """Whether a question about ``topic`` need not name the document: the heading says it already (a title
    "Titles for Support" over "Titles for Support Leadership"), or the heading is the title."""
    a, b = set(_WORD.findall(topic.lower())), set(_WORD.findall(title.lower()))
    return bool(b) and len(a & b) >= 0.6 * len(b)


@dataclass(frozen=True)
class Fact:
    """A question the section answers with a few of its own sentences (or its whole text, for a procedure)."""

    kind: str  # "number" | "definition" | "procedure" | "table"
    question: str
    answer: str


_NUMBER = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty)"
_UNIT = r"(?:business |working |calendar )?(?:days?|weeks?|months?|years?|hours?|minutes?)"
_HOW_MANY = re.compile(
    rf"^(?:(?P<cond>(?:If|When|After|Once|While) [^,]{{3,80}}), )?"
    rf"(?P<subj>[A-Za-z0-9][\w'’-]*(?: [\w'’-]+){{0,3}}?) (?:(?P<modal>can|will|may|must|should) )?"
    rf"(?P<verb>offers?|gets?|receives?|takes?|has|have|provides?|gives?|earns?|accrues?) "
    rf"(?:up to |about |around |at least |a maximum of |an additional )?(?P<num>{_NUMBER}) (?P<unit>{_UNIT})['’]?"
    rf"(?: of)? (?P<what>[a-z][\w'’ -]{{2,40}}?)(?= for | at | per | in | to |[,.;(]|$)"
)
_HOW_LONG = re.compile(rf"^(?P<subj>[A-Z][\w'’ -]{{2,40}}?) (?P<be>is|are) (?:{_NUMBER}) (?:{_UNIT}) long\b")
_THERE_IS = re.compile(
    rf"^There(?:'s|’s| is) an? (?:{_NUMBER})[- ](?:{_UNIT}) (?P<what>[a-z][\w -]{{2,30}}?)"
    rf"(?: (?P<prep>for|on|before|after) (?P<of>[\w'’ -]{{2,40}}?))?[.,;]"
)
_ELIGIBLE = re.compile(
    rf"^(?P<subj>You|Employees|Members|Customers)(?:['’]re| are) eligible (?P<to>for|to) (?P<what>.{{3,60}}?) "
    rf"after (?:{_NUMBER}) (?:{_UNIT})\b"
)
_HOW_TO = re.compile(r"^how (?:to|do i|do you|can i|should i) (?P<rest>.+?)\??$", re.I)
_SWAP = {"you": "I", "your": "my", "yours": "mine", "you're": "I'm", "you’re": "I'm", "yourself": "myself"}


def _asker(text: str) -> str:
    """The document's "you" as the asker's "I"."""
    return re.sub(r"\b(you['’]re|yourself|yours|your|you)\b", lambda m: _SWAP[m.group(0).lower()], text, flags=re.I)


def _number_question(sentence: str, casing: Truecaser) -> str | None:
    text = plain(sentence)
    m = _HOW_MANY.match(text)
    if m:
        subj = m["subj"]
        subj = {"you": "I", "we": "you"}.get(subj.lower(), casing.sentence_start(subj))
        verb = "have" if m["verb"] in ("has", "have") else m["verb"].removesuffix("s")
        singular = m["verb"].endswith("s") and subj not in ("I", "you")  # "offers", "has": does; "get": do
        aux = m["modal"] or ("does" if singular else "do")
        unit = m["unit"] if m["unit"].endswith("s") else f"{m['unit']}s"
        question = f"how many {unit} of {m['what'].strip()} {aux} {subj} {verb}?"
        if m["cond"]:
            question = f"{_asker(m['cond'][0].lower() + m['cond'][1:])}, {question}"
        return question[0].upper() + question[1:]
    m = _HOW_LONG.match(text)
    if m:
        return f"How long {m['be']} {casing.sentence_start(m['subj'])}?"
    m = _THERE_IS.match(text)
    if m:
        tail = f" {m['prep']} {casing.phrase(m['of'])}" if m["of"] else ""
        return f"How long is the {m['what']}{tail}?"
    m = _ELIGIBLE.match(text)
    if m:
        who = "am I" if m["subj"] == "You" else f"are {m['subj'].lower()}"
        return f"When {who} eligible {m['to']} {_asker(m['what'])}?"
    return None


def _definition(topic: str, sentences: list[str], casing: Truecaser) -> Fact | None:
    """ "Queenbee is our invoice system." under the heading "Queenbee": What is Queenbee?"""
    term = plain(topic).strip(" .:")
    if not term or len(term.split()) > 4 or term.endswith("?"):
        return None
    pattern = re.compile(
        rf"^(?:the )?{re.escape(term)}(?: \([^)]*\))? (?P<be>is|are) (?:a|an|the|our|one|how|where|what)\b", re.I
    )
    for n, sentence in enumerate(sentences[:3]):
        m = pattern.match(plain(sentence))
        if m:
            answer = " ".join(sentences[n : n + 2]) if len(" ".join(sentences[n : n + 2]).split()) <= 60 else sentence
            return Fact("definition", f"What {m['be']} {casing.phrase(term)}?", answer)
    return None


def _base_verb(gerund: str, casing: Truecaser) -> str | None:
    """ "Requesting" -> "request", "Making" -> "make", "Setting" -> "set": the candidate the documents use."""
    stem = gerund.lower().removesuffix("ing")
    if stem == gerund.lower() or len(stem) < 2:
        return None
    candidates = [stem, f"{stem}e"] + ([stem[:-1]] if len(stem) > 2 and stem[-1] == stem[-2] else [])
    return next((c for c in candidates if casing.knows(c)), None)


def _procedure(topic: str, text: str, casing: Truecaser) -> Fact | None:
    """A "How to ..." heading, or a gerund heading over numbered steps: How do I ...?"""
    heading = plain(topic).strip(" .:")
    m = _HOW_TO.match(heading)
    if m:
        return Fact("procedure", f"How do I {_asker(casing.phrase(m['rest']))}?", text)
    words = heading.split()
    if words and words[0].lower().endswith("ing") and re.search(r"^\s*\d+[.)]\s", text, re.M):
        verb = _base_verb(words[0], casing)
        if verb:
            rest = casing.phrase(" ".join(words[1:]))
            return Fact("procedure", f"How do I {' '.join(filter(None, [verb, _asker(rest)]))}?", text)
    return None


def _table_facts(text: str, casing: Truecaser, limit: int = 1) -> list[Fact]:
    """A cell of a Markdown table, asked by its row and column and answered as a sentence."""
    facts: list[Fact] = []
    for block in markdown_blocks(text):
        if block.kind != "table":
            continue
        rows = [[plain(c) for c in line.strip().strip("|").split("|")] for line in block.text.splitlines()]
        rows = [r for r in rows if not all(re.fullmatch(r"\s*:?-{3,}:?\s*", c) for c in r)]
        if len(rows) < 3:
            continue
        header, body = rows[0], rows[1:]
        for row in body:
            label = row[0].strip()
            cells = [(h.strip(), c.strip()) for h, c in zip(header[1:], row[1:], strict=False) if c.strip()]
            if not label or not cells or len(label.split()) > 6:
                continue
            column, cell = cells[sum(map(ord, label)) % len(cells)]
            if len(column.split()) <= 3 and not re.search(r"\(|\d", column):  # an attribute: price, yearly spend
                attribute = casing.sentence_start(column)
                question, answer = f"What is the {attribute} for {label}?", f"The {attribute} for {label} is {cell}"
            else:  # a grid (levels by skills), asked in a few ways so that no one phrasing marks the kind
                asks = [
                    f"What is expected for {label} at {column}?",
                    f"For {column}, what does {label} mean?",
                    f"What does {label} look like for {column}?",
                ]
                question, answer = (
                    asks[sum(map(ord, label + column)) % len(asks)],
                    f"For {label}, under {column}: {cell}",
                )
            facts.append(
                Fact("table", question, answer.rstrip() if answer.endswith((".", "!", "?")) else answer + ".")
            )
            if len(facts) >= limit:
                return facts
    return facts


def section_facts(topic: str, text: str, casing: Truecaser) -> list[Fact]:
    """The facts a section states clearly, each as a question and the sentences that answer it."""
    procedure = _procedure(topic, text, casing)
    if procedure is not None:
        return [procedure]
    prose = [
        s
        for b in markdown_blocks(text)
        if b.kind == "paragraph"
        for item in re.split(r"\n(?=\s*(?:[-*+]|\d+[.)])\s)", b.text)  # list items apart, wrapped lines joined
        for s in split_sentences(re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", item))
    ]
    facts = [f for f in [_definition(topic, prose, casing)] if f is not None]
    seen = {f.question for f in facts}
    for sentence in prose:
        question = _number_question(sentence, casing)
        if question and question not in seen:
            seen.add(question)
            facts.append(Fact("number", question, sentence))
    return facts + _table_facts(text, casing)
