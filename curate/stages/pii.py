"""pii.redact: find personal data and secrets, and replace them with typed placeholders (<EMAIL>, <PHONE>, ...).

Types, in the order they are replaced (a replaced span is never matched again):
``secret`` (private key blocks, provider API keys, JWTs, bearer tokens, values of password/token assignments),
``email``, ``iban`` (ISO 13616 mod-97 checked), ``card`` (13-19 digits, Luhn checked), ``ssn`` (US, with the
SSA's invalid ranges excluded), ``national_id`` (UK National Insurance numbers, Canadian SINs, Luhn checked),
``ip`` (IPv4 and IPv6, validated by ``ipaddress``), ``phone`` (7-15 digits in international or national
formats, with a ``+`` or separators; dates, times, IPs and card numbers are not phones).

Per type the action is ``redact`` (default), ``drop`` (the row goes to rejects as ``pii_<type>``, its text
redacted) or ``keep``. ``allow`` lists exact strings never redacted (the company's public support address),
``allow_domains`` email domains. Title and meta (record fields) are scrubbed like the text. Per-row counts go
to ``signals.pii``; totals per type to the step's counters in stats.json. The pipeline also scrubs the rejects
of earlier steps and deletes their checkpointed rows, so no original survives anywhere under the run directory.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register

PII_TYPES = ("secret", "email", "iban", "card", "ssn", "national_id", "ip", "phone")
Action = Literal["redact", "drop", "keep"]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ssn_ok(m: re.Match) -> bool:
    area, group, serial = m.group(0).split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _card_ok(m: re.Match) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _sin_ok(m: re.Match) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return len(digits) == 9 and digits[0] not in "08" and luhn_ok(digits)


def _ipv6_ok(m: re.Match) -> bool:
    try:
        ipaddress.IPv6Address(m.group(0))
    except ValueError:
        return False
    return True


# Shapes that are not phone numbers even when their digits could be: dates and SSN-shaped numbers.
_NOT_PHONE = re.compile(r"^(\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{3}-\d{2}-\d{4})$")


def _phone_ok(m: re.Match) -> bool:
    text = m.group(0)
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15 or _NOT_PHONE.match(text.strip()):
        return False
    if text.lstrip().startswith("+") or "(" in text:
        return True
    groups = re.findall(r"\d+", text)
    # A bare run of digits is an order or account number; four or more groups without a one-digit country
    # code (1-800-555-0142) read as an account or card fragment, not a phone.
    return 1 < len(groups) <= 3 or (len(groups) == 4 and len(groups[0]) == 1)


# (type, pattern, validator or None, group to replace: 0 = the whole match)
_PATTERNS: list[tuple[str, re.Pattern, Callable[[re.Match], bool] | None, int]] = [
    (
        "secret",
        re.compile(r"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----.*?-----END (?:[A-Z0-9 ]+ )?PRIVATE KEY-----", re.S),
        None,
        0,
    ),
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
    ("email", re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None, 0),
    (
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        lambda m: iban_ok(m.group(0)),
        0,
    ),
    ("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card_ok, 0),
    ("ssn", re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), _ssn_ok, 0),
    (
        "national_id",
        re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
        None,
        0,
    ),  # UK NINO
    ("national_id", re.compile(r"(?<![\d-])\d{3}[ -]\d{3}[ -]\d{3}(?![\d-])"), _sin_ok, 0),  # Canadian SIN
    (
        "ip",
        re.compile(
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
        ),
        None,
        0,
    ),
    (
        "ip",
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4})*(?![\w:])"),
        _ipv6_ok,
        0,
    ),
    (
        "phone",
        re.compile(r"(?<![\w+-])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,8}){1,4}(?![\w-])"),
        _phone_ok,
        0,
    ),
]


class PIIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actions: dict[Literal[PII_TYPES], Action] = Field(  # type: ignore[valid-type]
        default_factory=dict, description=f"Per type: redact (default), drop or keep. Types: {', '.join(PII_TYPES)}."
    )
    allow: list[str] = Field(default_factory=list, description="Exact strings never redacted (public contacts).")
    allow_domains: list[str] = Field(default_factory=list, description="Email domains never redacted.")

    def action(self, kind: str) -> Action:
        return self.actions.get(kind, "redact")


def scrub(text: str, config: PIIConfig) -> tuple[str, dict[str, int]]:
    """(text with placeholders, count per type found). Types whose action is keep are left in place."""
    counts: dict[str, int] = {}
    allowed = set(config.allow)
    domains = tuple(d.lower().lstrip("@") for d in config.allow_domains)
    for kind, pattern, valid, group in _PATTERNS:
        if config.action(kind) == "keep":
            continue

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
    return text, counts


def scrub_all(text: str, config: PIIConfig) -> str:
    """Every type redacted whatever its action: what rejects and checkpoints may hold."""
    return scrub(text, config.model_copy(update={"actions": {}}))[0]


@register("pii.redact", version=1, config=PIIConfig, scrubs=scrub_all)
def pii_redact(batch: Batch, config: PIIConfig) -> Batch:
    """Replace emails, phones, cards, IBANs, SSNs, national ids, IPs and secrets with typed placeholders."""
    out: Batch = {**batch, "text": [], "title": [], "meta": [], "signals": [], REJECT_REASON: [], REJECT_DETAIL: []}
    totals = {kind: [] for kind in PII_TYPES}
    for text, title, meta, signals in zip(batch["text"], batch["title"], batch["meta"], batch["signals"], strict=True):
        counts: dict[str, int] = {}
        cleaned = []
        for value in (text, title, meta):
            value, found = scrub(value, config)
            cleaned.append(value)
            for k, v in found.items():
                counts[k] = counts.get(k, 0) + v
        dropping = sorted(k for k in counts if config.action(k) == "drop")
        if dropping:  # a dropped row's envelope still holds only redacted text
            cleaned = [scrub_all(v, config) for v in cleaned]
        out["text"].append(cleaned[0])
        out["title"].append(cleaned[1])
        out["meta"].append(cleaned[2])
        sig = json.loads(signals or "{}")
        if counts:
            sig["pii"] = dict(sorted(counts.items()))
        out["signals"].append(dumps(sig))
        out[REJECT_REASON].append(f"pii_{dropping[0]}" if dropping else "")
        out[REJECT_DETAIL].append(", ".join(f"{counts[k]} {k}" for k in dropping))
        for kind in PII_TYPES:
            totals[kind].append(counts.get(kind, 0))
    for kind, values in totals.items():
        out[f"_count_pii_{kind}"] = values
    return out
