# Patronus Scanner: one image for web, workers, beat and migrations (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_DISABLE_TELEMETRY=1
WORKDIR /app

# dependencies first (cached layer), then a plain (non-editable) install of the source: the wheel carries
# templates/ (through the scanner/templates link), the migrations and the data files, exactly as `pip install .`
COPY pyproject.toml README.md LICENSE ./
RUN mkdir -p scanner/data db tasks web && touch scanner/__init__.py db/__init__.py tasks/__init__.py web/__init__.py \
    && cp LICENSE scanner/data/CORPUS_LICENSE.txt \
    && pip install . && pip uninstall -y patronus-scanner && rm -rf scanner db tasks web build
COPY scanner ./scanner
COPY db ./db
COPY tasks ./tasks
COPY web ./web
COPY templates ./templates
COPY alembic.ini ./
RUN pip install --no-deps . && rm -rf build \
    && useradd --create-home --uid 10001 patronus && mkdir -p /cache && chown patronus /cache
WORKDIR /home/patronus
USER patronus
EXPOSE 8000
CMD ["patronus", "--help"]
