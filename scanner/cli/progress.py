"""Progress display for the terminal: one tqdm bar per pipeline stage, on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm


class TerminalProgress:
    """A Progress that draws bars on a TTY and prints one line per stage change otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, fraction: float | None = None, message: str = "") -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            if self.tty:
                self.bar = tqdm(
                    total=100,
                    desc=stage,
                    file=sys.stderr,
                    leave=False,
                    bar_format="{desc:>7} {percentage:3.0f}%|{bar:30}| {postfix}",
                )
            else:
                print(f"[{stage}] {message}", file=sys.stderr, flush=True)
        if self.bar is not None:
            if fraction is not None:
                self.bar.n = int(round(fraction * 100))
            self.bar.set_postfix_str(message[:80], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
