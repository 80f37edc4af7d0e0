"""The server's outer layer: a pure ASGI middleware that gives every request an id, checks the bearer token,
counts it in the metrics, sheds load (body size, requests in flight) and turns any crash into a JSON 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid

from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragops.serving.metrics import Metrics

log = logging.getLogger("ragops.serve")
ENDPOINTS = ("/search", "/ask", "/judge", "/health", "/metrics", "/", "/docs", "/openapi.json", "/docs/oauth2-redirect")
# Reachable without the token: the health probe, and the page's static shell (it holds no data; it asks for
# the token and sends it with every API call).
PUBLIC = ("/health", "/", "/favicon.ico")


def reply(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


class _TooLarge(StarletteHTTPException):
    """413: raised by the body reader; FastAPI re-raises HTTP exceptions, so its handler answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (serve.max_body_bytes)")


class Guard:
    """Pure ASGI middleware: request id, bearer auth, metrics, and a JSON 500 instead of any traceback.

    It also sheds load before any work: a body over ``max_body_bytes`` gets 413 (from its Content-Length,
    or as soon as the bytes read pass the limit: nothing larger is ever held), and an endpoint with
    ``limits[path]`` requests already in flight answers 503 with ``Retry-After`` at once, so the latency of
    the requests it accepts stays bounded under overload instead of every request queueing."""

    def __init__(self, app, metrics: Metrics, token: str | None, max_body_bytes: int = 65536,
                 limits: dict[str, int] | None = None) -> None:
        self.app, self.metrics = app, metrics
        self.digest = hashlib.sha256(f"Bearer {token}".encode()).digest() if token else None
        self.max_body = max_body_bytes
        self.limits = dict(limits or {})
        self.inflight = dict.fromkeys(self.limits, 0)

    @staticmethod
    def _declared_length(scope) -> int:
        raw = next((v for k, v in scope.get("headers", []) if k == b"content-length"), b"0")
        try:
            return int(raw)
        except ValueError:
            return 0  # a malformed header: the bytes actually read are counted anyway

    def _authorized(self, scope) -> bool:
        got = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        # Equal-length digests, compared in constant time: neither the token nor its length leaks by timing.
        return hmac.compare_digest(hashlib.sha256(got).digest(), self.digest)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        rid = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        path = scope["path"]
        status, started = 500, False

        async def send_with_id(message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        seen = 0

        async def receive_limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge(self.max_body)
            return message

        limit, counted = self.limits.get(path), False
        try:
            if self.digest and not (path in PUBLIC or path.startswith("/static/")) and not self._authorized(scope):
                await reply(
                    401,
                    {"detail": "missing or invalid bearer token (Authorization: Bearer <token>)", "request_id": rid},
                    {"WWW-Authenticate": "Bearer"},
                )(scope, receive, send_with_id)
            elif self._declared_length(scope) > self.max_body:
                raise _TooLarge(self.max_body)
            elif limit is not None and self.inflight[path] >= limit:
                detail = f"busy: {limit} requests to {path} are in flight (serve limit); retry shortly"
                busy = reply(503, {"detail": detail, "request_id": rid}, {"Retry-After": "1"})
                await busy(scope, receive, send_with_id)
            else:
                if limit is not None:
                    self.inflight[path] += 1
                    counted = True
                await self.app(scope, receive_limited, send_with_id)
        except _TooLarge as exc:
            if not started:
                await reply(413, {"detail": exc.detail, "request_id": rid})(scope, receive, send_with_id)
            status = 413
        except Exception:
            log.exception("request %s %s failed", rid, path)  # the traceback goes to the server log only
            if not started:
                await reply(500, {"detail": "internal server error", "request_id": rid})(scope, receive, send_with_id)
            status = 500
        finally:
            if counted:
                self.inflight[path] -= 1
            endpoint = path if path in ENDPOINTS else ("/static" if path.startswith("/static/") else "other")
            self.metrics.observe(endpoint, state.get("mode", "none"), status, time.perf_counter() - t0)
