"""Clean reference text: the shipped WordNet example sentences by default, or a user corpus file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from scanner.errors import UsageError

SHIPPED_CORPUS = Path(__file__).parent / "data" / "clean_corpus.txt"
MAX_CORPUS_BYTES = 50 * 1024**2


@lru_cache(maxsize=4)
def _read(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise UsageError(f"corpus file {path} does not exist")
    if path.stat().st_size > MAX_CORPUS_BYTES:
        raise UsageError(f"corpus file {path} is over {MAX_CORPUS_BYTES // 1024**2} MB")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    sentences = tuple(line.strip() for line in lines if len(line.split()) >= 4)
    if len(sentences) < 20:
        raise UsageError(f"corpus file {path} has {len(sentences)} usable sentences (need >= 20 of >= 4 words)")
    return sentences


def load_corpus(path: Path | str | None = None) -> list[str]:
    """Sentences of >= 4 words, one a line; the shipped WordNet corpus when no path is given."""
    return list(_read(Path(path) if path else SHIPPED_CORPUS))
