"""`create_app()`: the FastAPI app (pages + JSON API). `patronus serve` runs it with uvicorn.

Errors are short: JSON `{"detail": ...}` for the API, a small escaped HTML page for browsers; a 422 lists where and
what (never the input echoed back); database outages are 503; nothing answers with a traceback or a file path.
The API documentation at /api/docs is rendered here from the OpenAPI schema (no script, no CDN).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from db.session import make_engine, make_session_factory
from scanner import __version__
from tasks.context import Enqueue, sessions_for
from tasks.settings import Settings, get_settings
from web import api, pages
from web.context import WebContext
from web.security import SECURITY_HEADERS, GuardMiddleware

log = logging.getLogger(__name__)

DOCS = """{% extends "_web.html" %}{% block title %}Patronus API{% endblock %}{% block content %}
<h1>Patronus API <span class="muted">{{ version }}</span></h1>
<p>The machine-readable contract: <a href="{{ openapi_url }}">{{ openapi_url }}</a> (OpenAPI 3).</p>
{% for op in operations %}<div class="box"><h2 class="mono">{{ op.method }} {{ op.path }}</h2>
<p>{{ op.summary }}</p>{% if op.description %}<p class="muted">{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table class="t"><tr><th>parameter</th><th>in</th><th>required</th></tr>
{% for p in op.parameters %}<tr><td class="mono">{{ p.name }}</td><td>{{ p["in"] }}</td><td>{{ p.required }}</td></tr>
{% endfor %}</table>{% endif %}<p class="muted">responses: {{ op.responses|join(", ") }}</p></div>{% endfor %}
{% endblock %}"""


def _problem(request: Request, status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    """JSON for the API, a small escaped HTML page for browsers."""
    if request.url.path.startswith("/api/") or request.url.path == "/healthz" or not isinstance(detail, str):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    page = (
        pages.environment()
        .from_string(
            '{% extends "_web.html" %}{% block content %}<h1>{{ status }}</h1><p>{{ detail }}</p>{% endblock %}'
        )
        .render(status=status, detail=detail, engine_version="")
    )
    return HTMLResponse(page, status_code=status, headers=headers)


def create_app(
    settings: Settings | None = None, sessions: sessionmaker[Session] | None = None, enqueue: Enqueue | None = None
) -> FastAPI:
    """The app; tests inject a session factory and a scan sender, production reads the environment."""
    settings = settings or get_settings()
    health_sessions = None
    if sessions is None:
        settings.ensure_data_dir()
        sessions = sessions_for(settings)
        kwargs = settings.engine_kwargs()
        if kwargs:
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=settings.health_timeout_s)
            health_sessions = make_session_factory(make_engine(settings.database_url, **kwargs))
    _connect_logs()
    app = FastAPI(
        title="Patronus Scanner", version=__version__, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.ctx = WebContext(settings=settings, sessions=sessions, enqueue=enqueue, health_sessions=health_sessions)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_middleware(GuardMiddleware, settings_of=lambda: app.state.ctx.settings)

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request):
        operations = []
        for path, methods in app.openapi().get("paths", {}).items():
            for method, op in methods.items():
                operations.append(
                    {
                        "method": method.upper(),
                        "path": path,
                        "summary": op.get("summary", ""),
                        "description": (op.get("description") or "").strip(),
                        "parameters": op.get("parameters", []),
                        "responses": list(op.get("responses", {})),
                    }
                )
        return pages.render(
            request,
            "_docs.html",
            operations=operations,
            version=__version__,
            openapi_url="/api/openapi.json",
            template_source=DOCS,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _problem(request, exc.status_code, exc.detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type", "")}
            for e in list(exc.errors())[:20]
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(sa_exc.DataError)
    async def _bad_value(request: Request, exc: sa_exc.DataError):
        return _problem(request, 400, "a value in the request cannot be stored or compared (out of range?)")

    @app.exception_handler(sa_exc.StatementError)
    async def _database(request: Request, exc: sa_exc.StatementError):
        if isinstance(exc, sa_exc.DataError):
            return _problem(request, 400, "a value in the request cannot be stored or compared (out of range?)")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
            return _problem(request, 503, "the database is unavailable; try again shortly", {"Retry-After": "5"})
        log.error("database error on %s", request.url.path, exc_info=exc)
        return _problem(request, 500, "internal error")

    @app.exception_handler(sa_exc.TimeoutError)
    async def _pool_timeout(request: Request, exc: sa_exc.TimeoutError):
        return _problem(request, 503, "the database is busy or unavailable; try again shortly", {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        response = JSONResponse({"detail": "internal error"}, status_code=500)
        response.headers.update(SECURITY_HEADERS)
        return response

    return app


def _connect_logs() -> None:
    """Our loggers reach uvicorn's error log (the enqueue-failure line, database outages) when nothing else
    handles them (under `patronus serve` the root logger has no handler; under a host application it may)."""
    target = logging.getLogger("uvicorn.error")
    if logging.getLogger().handlers or not target.handlers:
        return
    for name in ("web", "tasks", "db"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            for handler in target.handlers:
                logger.addHandler(handler)
            logger.setLevel(logging.INFO)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory web.app:app_from_env`."""
    return create_app()
