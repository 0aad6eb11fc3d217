"""`patronus worker --gpus`: one worker process per GPU, each pinned to its device through CUDA_VISIBLE_DEVICES.

The parent only supervises: it starts the children, forwards SIGINT/SIGTERM to them, and exits with the first
non-zero exit status among them (0 when all stopped cleanly)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuWorker:
    """One child worker: the device it sees and its node name."""

    device: str
    hostname: str

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "CUDA_VISIBLE_DEVICES": self.device}


def parse_gpus(spec: str, available: int) -> list[str]:
    """`all` (every visible device), a count `N` (the first N) or a comma list of device indices -> device ids.
    Raises ValueError on an unknown device or an empty selection."""
    spec = spec.strip()
    if spec == "all":
        devices = [str(i) for i in range(available)]
    elif "," in spec or not spec.isdigit():
        devices = [d.strip() for d in spec.split(",") if d.strip()]
        bad = [d for d in devices if not d.isdigit() or int(d) >= available]
        if bad:
            raise ValueError(f"no such GPU: {', '.join(bad)} ({available} visible)")
    else:
        count = int(spec)
        if count > available:
            raise ValueError(f"{count} GPUs asked for, {available} visible")
        devices = [str(i) for i in range(count)]
    if not devices:
        raise ValueError("no GPU selected (none visible)" if available == 0 else "no GPU selected")
    return list(dict.fromkeys(devices))


def plan(devices: list[str], hostname: str | None = None) -> list[GpuWorker]:
    """The children for `devices`: node names patronus-gpu<i>@<host> (or <name>-gpu<i>@... from `hostname`)."""
    name, _, host = (hostname or f"patronus@{socket.gethostname()}").partition("@")
    return [GpuWorker(device=d, hostname=f"{name}-gpu{d}@{host or socket.gethostname()}") for d in devices]


def visible_gpus() -> int:
    """CUDA devices this process sees (0 without torch's CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def supervise(workers: list[GpuWorker], child_args: list[str]) -> int:
    """Run `patronus worker <child_args> --hostname <name>` once per GPU and wait for all of them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "scanner.cli", "worker", *child_args, f"--hostname={w.hostname}"],
            env=w.env(dict(os.environ)),
        )
        for w in workers
    ]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)
