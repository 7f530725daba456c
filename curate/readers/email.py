"""E-mail: .eml (one message) and .mbox (one document per message), subject and body, quoted replies removed.

The standard library's ``email`` (policy ``default``) and ``mailbox``: offline and complete. The plain-text
part is preferred; an HTML-only message goes through the HTML reader. Quoted replies are cut: lines starting
with '>' and everything after an attribution line ("On ... wrote:") or an Outlook "Original Message" rule.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import BadRecord, FileRejected, Record
from curate.readers.html import html_to_markdown

# An attribution line ("On Mon, 2 Mar 2026, Ann wrote:"), possibly followed by the quote on the same line
# when an HTML message was flattened, or Outlook's rules: the reply below is not this message's text.
_REPLY_START = re.compile(
    r"^(On .{5,200}? wrote:|-{2,}\s*Original Message\s*-{2,}|_{10,}\s*$|From: .+ Sent: )", re.IGNORECASE
)


def strip_quoted(body: str) -> str:
    lines = []
    for line in body.splitlines():
        if _REPLY_START.match(line.strip()):
            break
        if line.lstrip().startswith(">"):
            continue
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


def _message_record(msg, index: int) -> Record | BadRecord:
    subject = " ".join(str(msg.get("subject", "") or "").split())
    part = msg.get_body(preferencelist=("plain", "html"))
    try:
        content = part.get_content() if part is not None else ""
    except (LookupError, ValueError) as err:
        return BadRecord("undecodable", f"message {index}: body cannot be decoded ({err})", subject, index)
    if part is not None and part.get_content_subtype() == "html":
        content = html_to_markdown(content)[0]
    body = strip_quoted(content)
    if not body:
        return BadRecord("empty_document", f"message {index} ({subject!r}) has no text of its own", subject, index)
    message_id = str(msg.get("message-id", "") or "").strip().strip("<>")
    meta = {"format": "email", "record": index, "from": str(msg.get("from", "")), "date": str(msg.get("date", ""))}
    return Record(text=body, title=subject or "(no subject)", meta=meta, id=message_id or None)


def read_eml(path: Path, data: bytes, **_: object) -> Iterator[Record | BadRecord]:
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as err:
        raise FileRejected("corrupt_file", f"not an e-mail message ({err})") from None
    if not msg.keys():
        raise FileRejected("corrupt_file", "no e-mail headers found")
    yield _message_record(msg, 1)


def read_mbox(path: Path, data: bytes | None = None, **_: object) -> Iterator[Record | BadRecord]:
    import mailbox

    box = mailbox.mbox(
        str(path), factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default), create=False
    )
    try:
        for index, msg in enumerate(box, start=1):
            yield _message_record(msg, index)
    finally:
        box.close()
