"""The HTTP app: report pages and a small JSON API (FastAPI)."""
