"""This process's resident memory, from ``/proc/self/status``."""

from __future__ import annotations

import resource
from pathlib import Path


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MiB."""
    now = _status_mb("VmRSS")
    return float("nan") if now is None else now


def peak_rss_mb() -> float:
    """Peak resident memory (VmHWM: reset by exec, unlike ``ru_maxrss``, which a child started by a large parent
    inherits), in MiB, rounded to 0.1."""
    peak = _status_mb("VmHWM")
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if peak is None else peak, 1)
