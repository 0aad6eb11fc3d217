"""Who may read and submit what (the access model; README "Access model").

- Submitting scans and the input monitor need an API token (PATRONUS_API_TOKENS): 401 without one, 403 unknown.
- Reports of public hub models are readable by anyone while PATRONUS_PUBLIC_READS is on (the default).
- Reports of private or gated hub repos (fetched with the server's HF_TOKEN) and of local folders are readable only
  with a token from PATRONUS_API_TOKENS or PATRONUS_READ_TOKENS; without one they do not exist (404), in the index,
  on model and scan pages, in lineage lists and in the API. A hub model not resolved yet counts as private while the
  server holds a hub token (it may be private), as public when it holds none (nothing private can be fetched).
- With PATRONUS_PUBLIC_READS=0 every read needs a token.
Tokens are compared in constant time; every known token is compared on each request.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

from db.models import Model
from tasks.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="patronus"'}


@dataclass(frozen=True)
class Reader:
    token: str | None = None
    can_submit: bool = False
    sees_private: bool = False

    @property
    def fingerprint(self) -> str | None:
        """A short stable id of the token (quotas, logs); never the token itself."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16] if self.token else None


def _known(token: str, candidates: list[str]) -> bool:
    found = False
    for candidate in candidates:  # constant time per comparison, every token compared
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def bearer(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, else 401."""
    if not header.strip():
        raise HTTPException(401, "missing Authorization header: send 'Authorization: Bearer <token>'", CHALLENGE)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "unsupported Authorization scheme: send 'Authorization: Bearer <token>'", CHALLENGE)
    if len(token) > 512:
        raise HTTPException(403, "unknown API token")
    return token


def submitter(settings: Settings, header: str) -> Reader:
    """The reader behind a header that must carry a submitting (API) token: 401/403 otherwise."""
    token = bearer(header)
    if not settings.api_tokens:
        raise HTTPException(403, "this server accepts no API tokens (set PATRONUS_API_TOKENS)")
    if not _known(token, settings.api_tokens):
        raise HTTPException(403, "unknown API token")
    return Reader(token=token, can_submit=True, sees_private=True)


def reader_for(settings: Settings, header: str) -> Reader:
    """Anonymous without a header; a known API or read token sees everything; an unknown token is refused (403)."""
    if not header.strip():
        return Reader()
    token = bearer(header)
    if settings.api_tokens and _known(token, settings.api_tokens):
        return Reader(token=token, can_submit=True, sees_private=True)
    if settings.read_tokens and _known(token, settings.read_tokens):
        return Reader(token=token, sees_private=True)
    raise HTTPException(403, "unknown API token")


def is_public(model: Model, settings: Settings) -> bool:
    """A public hub model (a model not resolved yet is public only when the server holds no hub token)."""
    if model.source != "hub":
        return False
    if model.private is None:
        return not settings.hf_token
    return not model.private


def can_read(model: Model | None, reader: Reader, settings: Settings) -> bool:
    if model is None:
        return False
    if reader.sees_private:
        return True
    return settings.public_reads and is_public(model, settings)


def get_reader(request: Request) -> Reader:
    """FastAPI dependency: the reader of this request."""
    return reader_for(request.app.state.ctx.settings, request.headers.get("authorization", ""))


def require_token(request: Request) -> Reader:
    """FastAPI dependency: a submitting token (checked again by the guard middleware before any body is read)."""
    return submitter(request.app.state.ctx.settings, request.headers.get("authorization", ""))
