# Patronus Scanner: one image for web, workers, beat and migrations (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_DISABLE_TELEMETRY=1
WORKDIR /app

# dependencies first (cached layer), then the source; an editable install keeps templates/ and alembic.ini
# next to the code, where the renderers and the migrations look for them
COPY pyproject.toml README.md* ./
RUN mkdir -p scanner db tasks web && touch scanner/__init__.py db/__init__.py tasks/__init__.py web/__init__.py \
    && pip install -e . && rm -rf scanner db tasks web
COPY scanner ./scanner
COPY db ./db
COPY tasks ./tasks
COPY web ./web
COPY templates ./templates
COPY alembic.ini ./
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 patronus && mkdir -p /cache && chown patronus /cache
USER patronus
EXPOSE 8000
CMD ["patronus", "--help"]
