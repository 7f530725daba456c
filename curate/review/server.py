"""``gristmill review RUN``: the review page and its two API calls, served by the standard library on 127.0.0.1.

Every request must carry the run's token, made fresh each start (``secrets``): the page as ``?token=`` in the URL
the command prints, the API calls as an ``X-Review-Token`` header, which a page from another origin cannot send
without a CORS preflight this server never answers. A Host header other than 127.0.0.1 or localhost at this port
is refused too (DNS rebinding). The page is one file (page.html); its Content-Security-Policy allows no source but
this server and only its own inline script, by hash.

- ``GET /api/items``: the examples (the dataset's train and test, and examples mix dropped, each as the reviewer
  judges it: an edited example shows its original, with the edit as its review), the documents they cite, every
  example's review, the bad lines of the decisions file. The dataset is read again when curate has replaced it.
- ``POST /api/decide``: one decision, checked (the id exists, its content hash is the one shown, a reject has a
  reason, an edit keeps the turns and, for extract_json, validates against the schema), appended to the file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from curate.layout import MARKER, RunLayout
from curate.output import check_dataset_dir, read_jsonl
from curate.review.decisions import (
    Review,
    append_decision,
    check_edit,
    check_json_answer,
    check_record,
    content_hash,
    fold,
    read_decisions,
)
from curate.rows import EDITED_BY_REVIEW
from curate.steps import reason_slug

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 1 << 20
# Rows mix dropped that a reviewer may bring back; the others say why not (RESCUE_NOT).
RESCUABLE = {"excluded_by_review", "not_accepted_in_review", "blocked_term", "near_duplicate_prompt",
             "over_kind_limit", "placeholder_in_response"}  # fmt: skip
RESCUE_NOT = {
    "duplicate_example": "the same messages are already an example",
    "over_test_limit": "the test set is capped by split.max_test_per_kind; raise it to keep more test examples",
    "test_prompt_seen_in_train": "its prompt is in the training split: as a test example it would measure recall",
    "closed_book_untrained": "its section trains nothing, so as a test example it would measure nothing learned",
}
REJECT_REASONS = [
    "wrong or unsupported answer", "not grounded in the excerpts", "should have answered (over-refusal)",
    "should have refused", "unnatural wording or tone", "private or sensitive data", "duplicate of another example",
]  # fmt: skip


class ReviewState:
    """The run's examples and their reviews, shared by the server's threads under one lock."""

    def __init__(self, run: Path, reviewer: str):
        self.dataset = check_dataset_dir(run)
        self.layout = RunLayout.of(self.dataset)
        self.path = self.layout.decisions
        self.reviewer = reviewer
        self.lock = threading.Lock()
        self.loaded_at = -1.0
        self.load()

    def _stamp(self) -> float:
        marker = self.dataset / MARKER
        return marker.stat().st_mtime if marker.is_file() else 0.0

    def load(self) -> None:
        """Read the dataset (train, test, mix's dropped examples, cited documents) and the decisions file."""
        stamp = self._stamp()
        rows = read_jsonl(self.dataset / "rejects" / "rejects.jsonl")
        originals = {r["id"]: json.loads(r["row"]) for r in rows if r["reason"] == EDITED_BY_REVIEW and r["row"]}
        items: dict[str, dict[str, Any]] = {}
        for split in ("train", "test"):
            for ex in read_jsonl(self.dataset / f"{split}.jsonl"):
                edited = json.loads(ex.get("meta") or "{}").get("edited_by_review")
                shown = originals.get(ex["id"], ex) if edited else ex  # the reviewer judged the original
                items[ex["id"]] = self._item(shown, split)
        for r in rows:
            if r["stage"] != "mix" or not r["row"] or r["reason"] == EDITED_BY_REVIEW or r["id"] in items:
                continue
            slug = reason_slug(r["reason"])
            item = self._item(json.loads(r["row"]), "dropped")
            item.update(reason=slug, detail=r["detail"])
            item["rescue"] = "" if slug in RESCUABLE else RESCUE_NOT.get(slug, "curate drops it for a rule")
            items[r["id"]] = item
        cited = {i for item in items.values() for i in item["cited"]}
        documents = {}
        for d in read_jsonl(self.dataset / "documents" / "documents.jsonl"):
            if d["id"] in cited:
                documents[d["id"]] = {k: d.get(k, "") for k in ("title", "section", "source", "text")}
                documents[d["id"]]["labels"] = _labels(d)
        for item in items.values():
            docs = [documents[i] for i in item["source_ids"] if i in documents]
            item["labels"] = sorted({label for d in docs for label in d["labels"]})
            item["source"] = ", ".join(sorted({d["source"] for d in docs}))
        self.items, self.documents = items, documents
        self.schemas = {p.stem: json.loads(p.read_text()) for p in sorted((self.dataset / "schemas").glob("*.json"))}
        decisions = read_decisions(self.path)
        self.problems = decisions.problems
        self.reviews = {i: decisions.of(i, item["hash"]) for i, item in items.items()}
        self.stale = sorted(i for i, item in items.items() if not self.reviews[i] and decisions.hashes_of(i))
        self.loaded_at = stamp

    def _item(self, ex: dict[str, Any], split: str) -> dict[str, Any]:
        meta = json.loads(ex.get("meta") or "{}")
        cited = list(dict.fromkeys([*meta.get("excerpts", []), *ex["source_ids"]]))
        return {
            "id": ex["id"], "hash": content_hash(ex), "split": split, "kind": ex["kind"],
            "messages": ex["messages"], "template": ex["template"], "generator": ex["generator"],
            "group": ex["group"], "section": meta.get("section", ""), "source_ids": ex["source_ids"],
            "excerpts": meta.get("excerpts", []), "target": meta.get("target", ""), "cited": cited,
            "schema": meta.get("schema", ""), "judge": meta.get("judge"),
            "meta": {k: v for k, v in meta.items() if k not in ("section", "excerpts", "target", "judge")},
        }  # fmt: skip

    def refresh(self) -> None:
        """Read the dataset again when curate has replaced it (not while it is between its two renames)."""
        stamp = self._stamp()
        if stamp and stamp != self.loaded_at:
            self.load()

    def payload(self) -> dict[str, Any]:
        with self.lock:
            self.refresh()
            return {
                "items": list(self.items.values()),
                "documents": self.documents,
                "reviews": {i: r.to_json() for i, r in self.reviews.items() if r and r.reviewed},
                "problems": self.problems,
                "stale": self.stale,
                "reasons": REJECT_REASONS,
                "reviewer": self.reviewer,
                "file": str(self.path),
            }

    def decide(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, answer) for one decision from the page."""
        record = {k: body.get(k) for k in ("id", "hash", "decision", "reason", "edit")}
        problem = check_record(record, "the decision")
        if problem:
            return HTTPStatus.BAD_REQUEST, {"error": problem}
        with self.lock:
            self.refresh()
            item = self.items.get(record["id"])
            if item is None:
                return HTTPStatus.NOT_FOUND, {"error": f"no example {record['id']!r} in {self.dataset}"}
            if record["hash"] != item["hash"]:
                return HTTPStatus.CONFLICT, {"error": f"{record['id']} changed since the page loaded; reload the page"}
            why = self._check(item, record)
            if why:
                return HTTPStatus.BAD_REQUEST, {"error": why}
            record.update(kind=item["kind"], who=self.reviewer)
            record = {k: v for k, v in record.items() if v not in (None, "")}
            written = append_decision(self.path, record)
            review = self.reviews.get(record["id"]) or Review()
            fold(review, written)
            self.reviews[record["id"]] = review
            return HTTPStatus.OK, {"id": record["id"], "review": review.to_json()}

    def _check(self, item: dict[str, Any], record: dict[str, Any]) -> str | None:
        decision = record["decision"]
        if decision == "rescue" and (item["split"] != "dropped" or item.get("rescue")):
            return f"{item['id']} cannot be rescued: {item.get('rescue') or 'it was not dropped'}"
        if decision == "reject" and len(str(record["reason"])) > 500:
            return "a reason is at most 500 characters"
        if decision == "edit":
            why = check_edit(item["messages"], record["edit"])
            if not why and item["kind"] == "extract_json":
                why = check_json_answer(record["edit"], self.schemas.get(item["schema"]))
            return why
        return None


def page_and_policy() -> tuple[bytes, str]:
    """The page's bytes and a Content-Security-Policy that lets only its own inline script run (by hash), and
    nothing be fetched from anywhere but this server."""
    text = PAGE.read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    policy = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return text.encode("utf-8"), policy


def make_server(state: ReviewState, port: int = 0, token: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    """(a server bound to 127.0.0.1:port, not yet serving; the token its requests need)."""
    token = token or secrets.token_urlsafe(24)
    page, policy = page_and_policy()

    class Handler(BaseHTTPRequestHandler):
        server_version = "gristmill-review"
        sys_version = ""

        def log_message(self, format, *args):  # the token is in the URL: never log request lines
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", policy)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json")

        def _allowed(self, given: str | None) -> bool:
            port = self.server.server_address[1]
            host = self.headers.get("Host", "")
            origin = self.headers.get("Origin")
            hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
            if host not in hosts or (origin is not None and origin not in {f"http://{h}" for h in hosts}):
                self._json(HTTPStatus.FORBIDDEN, {"error": "requests come from this server's own page only"})
                return False
            if not given or not hmac.compare_digest(given.encode(), token.encode()):
                self._json(HTTPStatus.FORBIDDEN, {"error": "no valid token: open the URL `gristmill review` printed"})
                return False
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/":
                if self._allowed((parse_qs(url.query).get("token") or [None])[0]):
                    self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif url.path == "/api/items":
                if self._allowed(self.headers.get("X-Review-Token")):
                    self._json(HTTPStatus.OK, state.payload())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path}"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/api/decide":
                self._json(HTTPStatus.NOT_FOUND, {"error": "POST goes to /api/decide"})
                return
            if not self._allowed(self.headers.get("X-Review-Token")):
                return
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get_content_type() != "application/json" or not 0 < length <= MAX_BODY:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "a decision is a JSON body of at most 1 MiB"})
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as err:
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {err}"})
                return
            if not isinstance(body, dict):
                self._json(HTTPStatus.BAD_REQUEST, {"error": "a decision is a JSON object"})
                return
            self._json(*state.decide(body))

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server, token


def _labels(document: dict[str, Any]) -> list[str]:
    labels = json.loads(document.get("labels") or "{}")
    return sorted(f"{k}={v}" for k, v in labels.items() if isinstance(v, (str, bool)))
