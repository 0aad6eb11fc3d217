"""What the web app needs per process: settings, sessions, and the scan sender (Celery unless injected)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker

from tasks.context import Enqueue
from tasks.settings import Settings


@dataclass
class WebContext:
    settings: Settings
    sessions: sessionmaker[Session]
    enqueue: Enqueue | None = None

    def send(self, scan_id: int, task_id: str) -> None:
        """Send a scan task (the row is already committed). Celery's app is imported on first use."""
        if self.enqueue is None:
            from tasks.app import sender_for

            self.enqueue = sender_for(self.settings)
        self.enqueue(scan_id, task_id)


def get_context(request: Request) -> WebContext:
    return request.app.state.ctx


def require_token(request: Request) -> str:
    """`Authorization: Bearer <token>` with a token from PATRONUS_API_TOKENS: 401 without one, 403 if unknown."""
    ctx: WebContext = request.app.state.ctx
    header = request.headers.get("authorization", "")
    challenge = {"WWW-Authenticate": 'Bearer realm="patronus"'}
    if not header.strip():
        raise HTTPException(401, "missing Authorization header: send 'Authorization: Bearer <token>'", challenge)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "unsupported Authorization scheme: send 'Authorization: Bearer <token>'",
                            challenge)
    if not ctx.settings.api_tokens:
        raise HTTPException(403, "this server accepts no API tokens (set PATRONUS_API_TOKENS)")
    known = False
    for candidate in ctx.settings.api_tokens:  # constant time per comparison, every token compared
        known |= hmac.compare_digest(token.encode(), candidate.encode())
    if not known:
        raise HTTPException(403, "unknown API token")
    return token
