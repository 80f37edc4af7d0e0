"""A local stand-in for the Anthropic Messages API (POST /v1/messages) on 127.0.0.1.

It records every request (headers and JSON body) and answers from a script: each scripted step is a
status code (429 / 500 / 200), an optional delay, and the answer text; when the script runs out it
answers 200 with a reply that cites the first document of the request. The real `anthropic` SDK
talks to it through ``base_url``.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Step:
    status: int = 200
    text: str | None = None  # None: cite the first document of the request
    delay_s: float = 0.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class FakeAnthropic:
    script: list[Step] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def __enter__(self) -> FakeAnthropic:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                step = fake.script.pop(0) if fake.script else Step()
                if step.delay_s:
                    time.sleep(step.delay_s)
                if self.path != "/v1/messages":
                    return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "?"}})
                if step.status != 200:
                    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(step.status, "api_error")
                    return self._send(
                        step.status,
                        {"type": "error", "error": {"type": kind, "message": "scripted"}},
                        {"retry-after-ms": "5"},
                    )
                text = fake.fill(step.text, body) if step.text is not None else fake.default_text(body)
                return self._send(
                    200,
                    {
                        "id": f"msg_{len(fake.requests):04d}",
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "text", "text": text}],
                        "model": body.get("model", "?"),
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": {"input_tokens": 100, "output_tokens": 20},
                    },
                )

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def documents(body: dict) -> list[tuple[str, str]]:
        """(id, text) of each document in the request's user message, in order."""
        content = body["messages"][0]["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        found = re.findall(r'<document id="([^"]+)"[^>]*>(.*?)</document>', text, flags=re.S)
        return [(html.unescape(i), html.unescape(t).strip()) for i, t in found]

    @classmethod
    def fill(cls, text: str, body: dict) -> str:
        """A scripted text with ``{first}`` (the first document's id) and ``{first_sentence}`` (that document's
        first sentence, verbatim) filled in from the request."""
        docs = cls.documents(body) or [("none", "")]
        first_id, first_text = docs[0]
        sentence = re.split(r"(?<=[.!?])\s+", first_text)[0].rstrip(".")
        return text.replace("{first}", first_id).replace("{first_sentence}", sentence)

    @staticmethod
    def default_text(body: dict) -> str:
        content = body["messages"][0]["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        ids = re.findall(r'<document id="([^"]+)"', text)
        first = ids[0] if ids else "none"
        return (
            f"The documents report a measurable effect on the outcome studied [{first}]. "
            "A second statement cites a document that was never provided [99999999]."
        )
