"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol, for tests and benchmarks.

Answers are scripted per request by ``responder(body) -> str`` (the message content), and faults are injected
per request: ``faults`` is a list consumed one per request (None: answer normally), or ``fault_for(body)``
decides. A fault is ``("status", code, retry_after)``, ``("slow", seconds)``, ``("malformed",)`` (a body that
is not JSON), ``("empty",)`` (no choices), ``("trickle", seconds_per_byte)`` or ``("huge", bytes[, announce])``.
Every request is logged with its start and end times, body and headers; ``max_in_flight`` is the most requests
it ever served at once.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops connections of a burst: a client at 16+ would stall


class FakeOpenAI:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.responder = lambda body: "ok"
        self.faults: list[tuple | None] = []
        self.fault_for = None
        self.log: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # response_format types it accepts; any other is refused with format_refusal (status, message). The
        # default refusal is OpenAI's; llama.cpp's server answers HTTP 500 with a request-validation error.
        self.formats = {"text", "json_object", "json_schema"}
        self.format_refusal = (400, "response_format json_schema unsupported")
        self.omit_usage = False  # some servers send no usage: the client must estimate
        self.cost: float | None = None  # usage.cost of every response, as OpenRouter reports it
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one response, no 40 ms delayed-ACK stall between headers and body

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                data = self.rfile.read(length)
                if len(data) < length:  # the client was killed mid-request: no request arrived
                    self.close_connection = True
                    return
                body = json.loads(data or b"{}")
                entry = {"start": time.monotonic(), "body": body, "headers": dict(self.headers), "path": self.path}
                with server._lock:
                    server.log.append(entry)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    fault = server.faults.pop(0) if server.faults else None
                try:
                    if fault is None and server.fault_for is not None:
                        fault = server.fault_for(body)
                    self._answer(body, fault)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                    entry["end"] = time.monotonic()

            def _answer(self, body, fault):
                if fault and fault[0] == "slow":
                    time.sleep(fault[1])
                elif server.latency:
                    time.sleep(server.latency)
                if fault and fault[0] == "status":
                    headers = {"retry-after": str(fault[2])} if len(fault) > 2 and fault[2] is not None else {}
                    return self._send(fault[1], {"error": {"message": f"injected {fault[1]}"}}, headers)
                if fault and fault[0] == "malformed":
                    return self._raw(200, b'{"id": "x", "choices": [{"message": ')
                if fault and fault[0] == "trickle":  # headers at once, then a byte every fault[1] seconds
                    return self._trickle(fault[1])
                if fault and fault[0] == "huge":  # a body of fault[1] bytes, length announced or not
                    return self._huge(fault[1], announce=len(fault) < 3 or fault[2])
                if "response_format" in body and body["response_format"].get("type") not in server.formats:
                    status, message = server.format_refusal
                    return self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})
                content = server.responder(body)
                choices = [] if fault and fault[0] == "empty" else [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ]  # fmt: skip
                prompt = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4
                usage = {"prompt_tokens": prompt, "completion_tokens": len(content) // 4,
                         "total_tokens": prompt + len(content) // 4,
                         **({} if server.cost is None else {"cost": server.cost})}  # fmt: skip
                self._send(200, {
                    "id": f"chatcmpl-{len(server.log)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake-model"), "choices": choices,
                    **({} if server.omit_usage else {"usage": usage}),
                })  # fmt: skip

            def _trickle(self, every):
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "slow"}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:  # the client gave up
                    pass

            def _huge(self, size, announce):
                self.send_response(200)
                self.send_header("content-type", "application/json")
                if announce:
                    self.send_header("content-length", str(size))
                else:
                    self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                try:
                    chunk = b"x" * 65536
                    for _ in range(size // len(chunk)):
                        self.wfile.write(chunk if announce else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    pass

            def _send(self, status, payload, headers=None):
                self._raw(status, json.dumps(payload).encode(), headers)

            def _raw(self, status, data, headers=None):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def completions(self) -> list[dict[str, Any]]:
        return [e for e in self.log if e["path"].endswith("/chat/completions")]
