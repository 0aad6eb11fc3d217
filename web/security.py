"""The guard in front of the app (pure ASGI, so nothing is read before it decides):

1. NUL bytes in the path or query string: 400 (Postgres cannot store them; nothing downstream wants them);
2. a declared body over `max_body_bytes`: 413 before a byte of it is read; a streamed body is counted and cut off;
3. routes that need an API token check it before the body is read (an unauthenticated client cannot make the
   server read, buffer or parse anything);
4. security headers on every response, errors included.
Bodies the guard lets through are buffered (bounded) and handed to the app; JSON is parsed off the event loop by the
endpoints (web.api.parse_body).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

from web.access import submitter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
TOKEN_ROUTES = {("POST", "/api/scans"), ("POST", "/api/monitor")}


def with_security_headers(headers: list[tuple[bytes, bytes]], private: bool) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    out = list(headers)
    for name, value in SECURITY_HEADERS.items():
        if name.encode() not in present:
            out.append((name.encode(), value.encode()))
    if b"content-security-policy" not in present:
        out.append((b"content-security-policy", DEFAULT_CSP.encode()))
    if private and b"cache-control" not in present:
        out.append((b"cache-control", b"no-store"))
    return out


async def _respond(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send(
        {"type": "http.response.start", "status": status, "headers": with_security_headers(headers, private=False)}
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app: ASGIApp, settings_of: Callable[[], Any]) -> None:
        self.app = app
        self.settings_of = settings_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings_of()
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        private = b"authorization" in headers

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = with_security_headers(list(message.get("headers", [])), private)
            await send(message)

        path: str = scope.get("path", "")
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"\x00" in query or b"%00" in query.lower():
            await _respond(send, 400, "NUL characters are not allowed in the path or query")
            return
        method = scope.get("method", "GET")
        if (method, path.rstrip("/") or "/") in TOKEN_ROUTES:
            try:
                submitter(settings, headers.get(b"authorization", b"").decode("latin-1"))
            except HTTPException as exc:
                await _respond(send, exc.status_code, str(exc.detail), dict(exc.headers or {}))
                return
        limit = settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _respond(send, 400, "invalid Content-Length")
                return
            if size > limit:
                await _respond(send, 413, f"request body over the limit of {limit:,} bytes")
                return
        if method in ("GET", "HEAD", "OPTIONS", "DELETE") and declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send_secured)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await _respond(send, 413, f"request body over the limit of {limit:,} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_secured)
