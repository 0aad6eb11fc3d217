"""`create_app()`: the FastAPI app (pages + JSON API). `patronus serve` runs it with uvicorn."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanner import __version__
from tasks.context import Enqueue, sessions_for
from tasks.settings import Settings, get_settings
from web import api, pages
from web.context import WebContext


def create_app(settings: Settings | None = None, sessions: sessionmaker[Session] | None = None,
               enqueue: Enqueue | None = None) -> FastAPI:
    """The app; tests inject a session factory and a scan sender, production reads the environment."""
    settings = settings or get_settings()
    if sessions is None:
        settings.ensure_data_dir()
        sessions = sessions_for(settings.database_url)
    app = FastAPI(title="Patronus Scanner", version=__version__, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.ctx = WebContext(settings=settings, sessions=sessions, enqueue=enqueue)
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        """JSON for the API, a small escaped HTML page for browsers."""
        if request.url.path.startswith("/api/") or request.url.path == "/healthz":
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        page = pages.environment().from_string(
            '{% extends "_layout.html" %}{% block content %}<h1>{{ status }}</h1><p>{{ detail }}</p>{% endblock %}'
        ).render(status=exc.status_code, detail=exc.detail, engine_version="")
        return HTMLResponse(page, status_code=exc.status_code, headers=exc.headers)

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory web.app:app_from_env`."""
    return create_app()
