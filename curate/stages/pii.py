"""pii.redact: find personal data and secrets, and replace them with typed placeholders (<EMAIL>, <PHONE>, ...).

Types, in the order they are replaced (a replaced span is never matched again):
``secret`` (private key blocks; detect-secrets' token and high-entropy detectors; bearer tokens, values of
password/token assignments and the provider keys it lacks), ``email`` (Unicode addresses too), ``iban`` (any
case, spaces or dashes; the country's length and mod 97 from python-stdnum), ``card`` (13-19 digits with spaces,
dashes or dots, Luhn checked), ``ssn`` (US, with the SSA's invalid ranges excluded), ``national_id`` (UK National
Insurance numbers, Canadian SINs checked by python-stdnum), ``ip`` (IPv4, not a version number after a version
word, and IPv6, validated by ``ipaddress``), ``phone`` (numbers valid in their numbering plan, found and checked
with ``phonenumbers``; ``default_region`` reads those without a country code), ``name`` (values of person
fields: ``customer``, ``agent``, ``customer_name``, ``first_name``, ... see ``is_person_key``).

Free text is scanned as it is: nothing in it but the personal data changes. Only the structured fields (``meta``,
``signals``, ``labels``) are read as JSON, value by value, with keys read as words.

Per type the action is ``redact`` (default), ``drop`` (the row goes to rejects as ``pii_<type>``, its text
redacted) or ``keep``. ``allow`` lists exact strings never redacted (the company's public support address),
``allow_domains`` email domains. Title and meta (record fields) are scrubbed like the text. Per-row counts go
to ``signals.pii``; totals per type to the step's counters in stats.json. The pipeline also scrubs the rejects
of earlier steps and deletes their checkpointed rows, so no original survives anywhere under the run directory.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import os
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.errors import StageError
from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register

PII_TYPES = ("secret", "email", "iban", "card", "ssn", "national_id", "ip", "phone", "name", "location")
Action = Literal["redact", "drop", "keep"]


def luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def iban_ok(candidate: str) -> bool:
    """ISO 13616: the country's own length and the mod-97 check (python-stdnum's registry)."""
    from stdnum import iban

    return iban.is_valid(candidate)


# Where an IBAN may start: a country code and check digits (any case), then its characters with or without
# space or dash separators, run on past its end; the country's length (python-stdnum) ends it.
_IBAN_START = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}")


def _ibans(text: str, counts: dict[str, int], allowed: set[str]) -> str:
    """Each IBAN as <IBAN>: the longest prefix of a candidate that is valid; the search goes on right after it
    (or after the candidate's first character), so two IBANs in a row are both found."""
    out, pos = [], 0
    while (m := _IBAN_START.search(text, pos)) is not None:
        whole = m.group(0)
        ends = [i + 1 for i, c in enumerate(whole) if c.isalnum()]
        size = next((ends[n - 1] for n in range(min(len(ends), 34), 14, -1) if iban_ok(whole[: ends[n - 1]])), 0)
        if not size or whole[:size] in allowed:
            out.append(text[pos : m.start() + 1])
            pos = m.start() + 1
            continue
        out.append(text[pos : m.start()] + "<IBAN>")
        counts["iban"] = counts.get("iban", 0) + 1
        pos = m.start() + size
    return "".join(out) + text[pos:]


def _ssn_ok(m: re.Match) -> bool:
    area, group, serial = m.group(0).split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _card_ok(m: re.Match) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _sin_ok(m: re.Match) -> bool:
    from stdnum.ca import sin

    return sin.is_valid(m.group(0))


# A dotted quad after a version word is a version ("firmware 1.2.0.14"), not an address.
_VERSION_BEFORE = re.compile(r"(?i)(?:\b(?:version|ver|build|release|firmware|fw|rev|revision|update)\.?:?\s*|\bv)$")


def _ipv4_ok(m: re.Match) -> bool:
    return not _VERSION_BEFORE.search(m.string[max(0, m.start() - 24) : m.start()])


def _ipv6_ok(m: re.Match) -> bool:
    try:
        ipaddress.IPv6Address(m.group(0))
    except ValueError:
        return False
    return True


# (type, pattern, validator or None, group to replace: 0 = the whole match)
_PATTERNS: list[tuple[str, re.Pattern, Callable[[re.Match], bool] | None, int]] = [
    ("secret", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), None, 0),  # AWS access key ids
    ("secret", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}"), None, 0),  # GitHub
    ("secret", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), None, 0),  # OpenAI, Anthropic
    ("secret", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b"), None, 0),  # Stripe
    ("secret", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), None, 0),  # Slack
    ("secret", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), None, 0),  # Google API keys
    ("secret", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), None, 0),  # JWT
    ("secret", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)"), None, 1),
    (
        "secret",
        re.compile(
            r"""(?i)\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token)\s*[:=]\s*["']?([^\s"',;<>]{4,})"""
        ),
        None,
        1,
    ),
    # The local part starts only where a run of its characters starts (% included), so a long run with no @ is
    # scanned once, not once per position: linear on URL-encoded text.
    (
        "email",
        re.compile(r"(?<![\w.%+-])[\w.%+-]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)*\.[^\W\d_]{2,}\b"),
        None,
        0,
    ),
    ("card", re.compile(r"(?<!\d)(?<!\d[-.])\d(?:[ .-]?\d){12,18}(?!\d)(?![-.]\d)"), _card_ok, 0),
    ("ssn", re.compile(r"(?<!\d)(?<!\d-)\d{3}-\d{2}-\d{4}(?!\d)(?!-\d)"), _ssn_ok, 0),
    (
        "national_id",
        re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
        None,
        0,
    ),  # UK NINO
    ("national_id", re.compile(r"(?<!\d)(?<!\d-)\d{3}[ -]\d{3}[ -]\d{3}(?!\d)(?!-\d)"), _sin_ok, 0),  # Canadian SIN
    (
        "ip",
        re.compile(
            r"(?<!\d)(?<!\d\.)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\d)(?!\.\d)"
        ),
        _ipv4_ok,
        0,
    ),
    (
        "ip",
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4})*(?![\w:])"),
        _ipv6_ok,
        0,
    ),
]


# Keys whose values are secrets whatever they look like, and keys whose values name a person (e-mail headers,
# ticket roles). Keys are read as words (customerName, customer-name and customer_name alike): a key is a
# secret's when one of its words is a secret word, or it ends in token/key after a word that makes it one
# (auth_token, api_key); "secretary" and "token_count" are not. "name" alone is not a person's: in exports it
# is as often a product column.
SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "secrets", "credential", "credentials",
                "apikey", "accesstoken", "privatekey"}  # fmt: skip
KEY_WORDS = {"api", "access", "private", "signing", "encryption", "client", "license"}  # <word>_key is a secret
PERSON_FIELDS = ["customer", "requester", "assignee", "author", "from", "to", "cc", "bcc", "reply_to", "sender",
                 "recipient", "delivered_to", "return_path", "agent", "contact", "reporter", "submitter",
                 "employee", "owner", "firstname", "lastname", "surname", "fullname"]  # fmt: skip
# Words that make "<word>_name" a person's name (first_name, customer_name, agent_name; not product_name).
PERSON_NAME_WORDS = {"first", "last", "full", "given", "family", "middle", "display", "legal", "maiden", "sur"}
# Record fields stored as JSON text: the only strings parsed as JSON when scrubbed.
STRUCTURED_COLUMNS = ("meta", "signals", "labels")


class PIIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actions: dict[Literal[PII_TYPES], Action] = Field(  # type: ignore[valid-type]
        default_factory=dict, description=f"Per type: redact (default), drop or keep. Types: {', '.join(PII_TYPES)}."
    )
    allow: list[str] = Field(default_factory=list, description="Exact strings never redacted (public contacts).")
    allow_domains: list[str] = Field(default_factory=list, description="Email domains never redacted.")
    default_region: str = Field(
        "US", description="Region (ISO 3166 code) whose numbering plan reads phone numbers written without +code."
    )
    person_fields: list[str] = Field(
        default_factory=lambda: list(PERSON_FIELDS),
        description="Record and header fields whose values name a person: they become <NAME> whole.",
    )
    presidio: bool = Field(
        False,
        description="Also find names, places and the like in free text with presidio-analyzer's recognizers "
        "(pip install 'gristmill[presidio]', plus a spaCy model).",
    )
    presidio_model: str = Field(
        "en_core_web_sm", description="The spaCy pipeline presidio reads with: a name or a path."
    )
    presidio_entities: list[str] = Field(
        default_factory=lambda: ["PERSON", "LOCATION", "NRP"], description="presidio entity types to redact."
    )
    presidio_min_score: float = Field(0.5, ge=0.0, le=1.0, description="Lowest presidio score that redacts.")
    pseudonym_key_env: str | None = Field(
        None,
        description="Environment variable holding a key for the hashes that replace identifiers holding PII "
        "(file names, record ids); without one they are hashed with a fixed salt.",
    )

    def action(self, kind: str) -> Action:
        return self.actions.get(kind, "redact")


_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9 ]{1,40} )?PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9 ]{1,40} )?PRIVATE KEY-----")


def _private_keys(text: str, counts: dict[str, int]) -> str:
    """PEM private key blocks, BEGIN to the next END, found in one pass: a BEGIN with no END after it ends the
    search, since no later BEGIN can have one either (a lazy ``.*?`` regex rescans to the end from every BEGIN)."""
    out, pos = [], 0
    while (begin := _KEY_BEGIN.search(text, pos)) is not None:
        end = _KEY_END.search(text, begin.end())
        if end is None:
            break
        out.append(text[pos : begin.start()] + "<SECRET>")
        counts["secret"] = counts.get("secret", 0) + 1
        pos = end.end()
    return "".join(out) + text[pos:]


def scrub(text: str, config: PIIConfig) -> tuple[str, dict[str, int]]:
    """(text with placeholders, count per type found). Types whose action is keep are left in place. A JSON
    escape (a literal backslash-n in exported text) ends a match without being rewritten: each piece between
    escapes is scanned on its own, so ``\\n+1 201-555-0123`` still shows the phone, and the text keeps its bytes."""
    counts: dict[str, int] = {}
    pieces = _ESCAPE_SPLIT.split(text)
    out = [piece if i % 2 else _scrub_piece(piece, config, counts) for i, piece in enumerate(pieces)]
    return "".join(out), counts


_ESCAPE_SPLIT = re.compile(r"(\\[ntr])")


def _scrub_piece(text: str, config: PIIConfig, counts: dict[str, int]) -> str:
    allowed = set(config.allow)
    domains = tuple(d.lower().lstrip("@") for d in config.allow_domains)
    if config.action("secret") != "keep":
        text = _private_keys(text, counts)
        text = _detected_secrets(text, counts, allowed)
    for kind, pattern, valid, group in _PATTERNS:
        if config.action(kind) == "keep":
            continue
        if kind == "card" and config.action("iban") != "keep":  # IBANs first: their digits may pass Luhn
            text = _ibans(text, counts, allowed)

        def replace(m: re.Match, kind=kind, valid=valid, group=group) -> str:
            found = m.group(group)
            if found in allowed or (valid is not None and not valid(m)):
                return m.group(0)
            if kind == "email" and found.lower().rsplit("@", 1)[-1].endswith(domains) and domains:
                return m.group(0)
            counts[kind] = counts.get(kind, 0) + 1
            start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
            whole = m.group(0)
            return whole[:start] + f"<{kind.upper()}>" + whole[end:]

        text = pattern.sub(replace, text)
    if config.action("phone") != "keep":
        text = _phones(text, config, counts, allowed)
    if config.presidio:
        text = _presidio(text, config, counts, allowed)
    return text


@functools.cache
def _secret_detectors() -> tuple[list[re.Pattern], list[tuple[re.Pattern, Any]]]:
    """detect-secrets' plugins: the regular expressions of its token detectors (cloud keys, chat, payment and
    package-registry tokens, JWTs, credentials in URLs), and its high-entropy string detectors (quoted base64 or
    hex strings above the plugin's entropy limit). Its IP and private-key detectors are left out: addresses are
    their own type here, and a key is redacted as its whole block."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

    regexes, entropy = [], []
    for cls in get_mapping_from_secret_type_to_class().values():
        if cls.__name__ in ("IPPublicDetector", "PrivateKeyDetector"):
            continue
        if issubclass(cls, RegexBasedDetector):
            regexes += list(cls.denylist)
        elif issubclass(cls, HighEntropyStringsPlugin):
            plugin = cls()
            entropy.append((plugin.regex, plugin))
    return regexes, entropy


def _detected_secrets(text: str, counts: dict[str, int], allowed: set[str]) -> str:
    """What detect-secrets' plugins find, as <SECRET>: a token, or the secret part of a match (a Basic-auth URL
    keeps its scheme and user), or a quoted string's value whose entropy passes the plugin's limit."""
    regexes, entropy = _secret_detectors()
    spans: list[tuple[int, int]] = []
    for regex in regexes:
        for m in regex.finditer(text):
            # The secret is the first group when it is one (a password in a URL, a token after its key), not a
            # prefix the pattern names (ghp_ of a GitHub token) or a short piece: else the whole match.
            group = next((g for g in range(1, regex.groups + 1) if m.group(g)), 0)
            inside = group and m.start(group) > m.start() and len(m.group(group)) >= 8
            spans.append(m.span(group if inside else 0))
    for regex, plugin in entropy:
        for m in regex.finditer(text):
            value = m.group(2)
            if len(value) >= 20 and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit:
                spans.append(m.span(2))
    out, pos = [], 0
    for begin, end in sorted(spans):
        if begin < pos or text[begin:end] in allowed:
            continue
        out.append(text[pos:begin] + "<SECRET>")
        counts["secret"] = counts.get("secret", 0) + 1
        pos = end
    return "".join(out) + text[pos:]


# presidio entity types and the placeholder type they become (others keep their own name).
_PRESIDIO_TYPES = {"PERSON": "name", "LOCATION": "location", "GPE": "location"}


@functools.cache
def _analyzer(model: str):
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError:
        raise StageError(
            "pii.redact: presidio is on, but presidio-analyzer is not installed; install the extra: "
            "pip install 'gristmill[presidio]'"
        ) from None
    configuration = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    try:
        engine = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    except (OSError, ValueError) as err:  # spaCy: "Can't find model 'en_core_web_sm'"
        raise StageError(
            f"pii.redact: presidio needs the spaCy pipeline {model!r}, which cannot be loaded ({err}); install it: "
            f"python -m spacy download {model}"
        ) from None
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def _presidio(text: str, config: PIIConfig, counts: dict[str, int], allowed: set[str]) -> str:
    """Names, places and the other presidio entity types in free text, replaced by typed placeholders."""
    found = _analyzer(config.presidio_model).analyze(
        text=text, language="en", entities=config.presidio_entities, score_threshold=config.presidio_min_score
    )
    out, pos = [], 0
    for result in sorted(found, key=lambda r: (r.start, -r.end)):
        kind = _PRESIDIO_TYPES.get(result.entity_type, result.entity_type.lower())
        if result.start < pos or text[result.start : result.end] in allowed or config.action(kind) == "keep":
            continue
        out.append(text[pos : result.start] + f"<{kind.upper()}>")
        counts[kind] = counts.get(kind, 0) + 1
        pos = result.end
    return "".join(out) + text[pos:]


# Where a phone number could be: a run of digits and the characters that format them. Runs are found in linear
# time; libphonenumber's matcher then reads each (a long run in windows that overlap by more than any number's
# length), so a page of digit groups costs no more than its length.
_PHONE_RUN = re.compile(r"[+(]?\d[\d \t().\-/]*\d\)?")
_WINDOW, _STEP = 64, 32


def _phones(text: str, config: PIIConfig, counts: dict[str, int], allowed: set[str]) -> str:
    """Phone numbers that are valid in their numbering plan (phonenumbers: Google's libphonenumber data), numbers
    without a country code read in ``default_region``: a ticket id like #123-456-789, a date or an order number
    is not a phone."""
    import phonenumbers

    spans: list[tuple[int, int]] = []
    for run in _PHONE_RUN.finditer(text):
        if sum(c.isdigit() for c in run.group(0)) < 7:
            continue
        start = max(0, run.start() - 1)  # one character of context: '#123-456-789' is an id
        for lo in range(start, max(start + 1, run.end() - _WINDOW + _STEP), _STEP):
            window = text[lo : min(run.end(), lo + _WINDOW)]
            for match in phonenumbers.PhoneNumberMatcher(
                window, config.default_region, leniency=phonenumbers.Leniency.VALID
            ):
                if match.raw_string not in allowed:
                    spans.append((lo + match.start, lo + match.end))
    out, pos = [], 0
    for begin, end in sorted(set(spans)):
        if begin < pos:  # the same number seen from two windows
            continue
        out.append(text[pos:begin] + "<PHONE>")
        counts["phone"] = counts.get("phone", 0) + 1
        pos = end
    return "".join(out) + text[pos:]


def _key(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # camelCase words
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@functools.cache
def _person_keys(fields: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_key(f) for f in fields)


def is_secret_key(key: str) -> bool:
    """A field whose value is a secret: a secret word in it (db_password, client_secret), a token (token,
    auth_token; not token_count), or a kind of key (api_key, signing_key; not key or sort_key)."""
    words = _key(key).split("_")
    return (
        any(w in SECRET_WORDS for w in words)
        or words[-1] == "token"
        or (len(words) > 1 and words[-1] == "key" and words[-2] in KEY_WORDS)
    )


def is_person_key(key: str, fields: tuple[str, ...]) -> bool:
    """A field naming a person: one of ``person_fields`` (a role: customer, agent, contact), or a role or name
    word before ``name`` (customer_name, first_name), or a field ending in a role (assigned_agent)."""
    name = _key(key)
    people = _person_keys(fields)
    if name in people:
        return True
    words = name.split("_")
    if len(words) > 1 and words[-1] == "name":
        return words[-2] in people or words[-2] in PERSON_NAME_WORDS
    return (
        len(words) > 1
        and words[-1] in people
        and words[-1] not in ("to", "from", "cc", "bcc")
        and (
            name != "user_agent"  # a browser's, not a person
        )
    )


def scrub_value(
    value: Any, config: PIIConfig, counts: dict[str, int], key: str | None = None, structured: bool = False
) -> Any:
    """``value`` (a JSON value) with every string scrubbed: a value under a key that names a secret is <SECRET>
    whole, under a person field <NAME>. Inside a structured field (``meta``, ``signals``, ``labels``, a record's
    fields) a string that holds JSON is parsed and scrubbed value by value, and written back only when something
    was found; any other text is scanned as it is and keeps every byte that is not personal data."""
    if isinstance(value, dict):
        return {k: scrub_value(v, config, counts, k, True) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, config, counts, key, True) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if key and is_secret_key(key) and config.action("secret") != "keep":
        counts["secret"] = counts.get("secret", 0) + 1
        return "<SECRET>"
    if key and is_person_key(key, tuple(config.person_fields)) and config.action("name") != "keep":
        counts["name"] = counts.get("name", 0) + 1
        return "<NAME>"
    if structured and value.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            pass
        else:
            cleaned = scrub_value(parsed, config, counts, structured=True)
            return value if cleaned == parsed else dumps(cleaned)
    text, found = scrub(value, config)
    for k, v in found.items():
        counts[k] = counts.get(k, 0) + v
    return text


def pseudonym(value: str, config: PIIConfig) -> str:
    """A stable stand-in for an identifier that holds PII: the same value always gives the same stand-in (so
    grouping and the split still work), keyed by the secret in ``pseudonym_key_env`` when there is one."""
    secret = os.environ.get(config.pseudonym_key_env or "", "") or "gristmill-pii"
    return "pii-" + hmac.new(secret.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]


def scrub_identifier(value: str, config: PIIConfig, counts: dict[str, int]) -> str:
    """A doc id (a record's own id: "jane.doe@example.com") or a path's name: unchanged without PII, else its
    pseudonym."""
    if not value or scrub(value, config)[0] == value:
        return value
    counts["identifier"] = counts.get("identifier", 0) + 1
    return pseudonym(value, config)


def scrub_source(source: str, config: PIIConfig, counts: dict[str, int]) -> str:
    """A source path with each part that holds PII replaced by its pseudonym, the file's extension kept (so
    ``generate.sources`` globs like ``*.eml`` still match)."""
    parts = source.split("/")
    out = []
    for i, part in enumerate(parts):
        stem, dot, ext = part.rpartition(".") if i == len(parts) - 1 and "." in part else (part, "", "")
        clean = scrub_identifier(stem, config, counts)
        out.append(clean + dot + ext if clean != stem else part)
    return "/".join(out)


def scrub_row(row: dict[str, Any], config: PIIConfig, counts: dict[str, int]) -> dict[str, Any]:
    """A document row (or any record) with every value scrubbed (JSON fields value by value), and identifiers
    holding PII replaced: ``doc_id``, ``source``, and ``id``, which keeps its chunk index."""
    out = {}
    for column, value in row.items():
        if column == "doc_id" and isinstance(value, str):
            out[column] = scrub_identifier(value, config, counts)
        elif column == "id" and isinstance(value, str):
            doc, sep, chunk = value.rpartition("#")
            out[column] = (
                scrub_identifier(doc, config, counts) + sep + chunk if sep else scrub_identifier(value, config, counts)
            )
        elif column == "source" and isinstance(value, str):
            out[column] = scrub_source(value, config, counts)
        else:
            out[column] = scrub_value(value, config, counts, column, column in STRUCTURED_COLUMNS)
    return out


def _redact_everything(config: PIIConfig) -> PIIConfig:
    return config.model_copy(update={"actions": {}})


def scrub_envelope(envelope: dict[str, Any], config: PIIConfig) -> dict[str, Any]:
    """A reject envelope (an earlier step's) with every type redacted whatever its action, identifiers included:
    what rejects and checkpoints may hold."""
    every = _redact_everything(config)
    counts: dict[str, int] = {}
    out = dict(envelope)
    out["detail"] = scrub_value(out.get("detail") or "", every, counts)
    if out.get("row") is not None:
        out["row"] = dumps(scrub_row(json.loads(out["row"]), every, counts)) if _is_object(out["row"]) else (
            scrub_value(out["row"], every, counts)
        )  # fmt: skip
    out["doc_id"] = scrub_identifier(out.get("doc_id") or "", every, counts)
    out["source"] = scrub_source(out.get("source") or "", every, counts)
    ident, colon, rest = (out.get("id") or "").partition(":")  # "<source>:<record>" or a row id
    out["id"] = (
        scrub_source(ident, every, counts) + colon + rest
        if colon
        else scrub_row({"id": out.get("id") or ""}, every, counts)["id"]
    )
    return out


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


@register("pii.redact", version=3, config=PIIConfig, scrubs=scrub_envelope)
def pii_redact(batch: Batch, config: PIIConfig) -> Batch:
    """Replace emails, phones, cards, IBANs, SSNs, national ids, IPs, secrets and person fields with typed
    placeholders, in text, title, section and every JSON field; identifiers holding PII get stable pseudonyms."""
    columns = [c for c in batch if not c.startswith("_")]
    out: Batch = {**{c: [] for c in columns}, REJECT_REASON: [], REJECT_DETAIL: []}
    totals = {kind: [] for kind in PII_TYPES}
    for i in range(len(batch["text"])):
        row = {c: batch[c][i] for c in columns}
        counts: dict[str, int] = {}
        cleaned = scrub_row(row, config, counts)
        dropping = sorted(k for k in counts if k in PII_TYPES and config.action(k) == "drop")
        if dropping:  # a dropped row's envelope still holds only redacted text
            cleaned = scrub_row(row, _redact_everything(config), {})
        signals = json.loads(cleaned.get("signals") or "{}")
        found = {k: v for k, v in counts.items() if k in PII_TYPES}
        if found:
            signals["pii"] = dict(sorted(found.items()))
        cleaned["signals"] = dumps(signals)
        for c in columns:
            out[c].append(cleaned[c])
        out[REJECT_REASON].append(f"pii_{dropping[0]}" if dropping else "")
        out[REJECT_DETAIL].append(", ".join(f"{counts[k]} {k}" for k in dropping))
        for kind in PII_TYPES:
            totals[kind].append(counts.get(kind, 0))
    for kind, values in totals.items():
        out[f"_count_pii_{kind}"] = values
    return out
