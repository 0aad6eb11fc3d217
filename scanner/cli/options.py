"""Option parsing shared by several commands."""

from __future__ import annotations

import re

import click

SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
}


def parse_size(text: str) -> int:
    """'5GB', '500MiB', '1234' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise click.BadParameter(f"{text!r} is not a size like 500MB or 5GB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


FAIL_LEVELS = ["low", "medium", "high", "critical"]
