"""Child processes: one per configuration (the script runs itself again with internal flags, so that no
configuration inherits another's threads, caches, warm-up or peak memory, and reports one JSON line), and the
environment and port a child ``python -m embedkit`` (a server, an index run) gets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def checkout_env(**extra: str) -> dict[str, str]:
    """This environment with the checkout first on ``PYTHONPATH`` (a child ``python -m embedkit`` runs the code
    being measured, not an installed copy), plus ``extra`` variables."""
    path = os.pathsep.join([str(CHECKOUT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    return {**os.environ, "PYTHONPATH": path, **extra}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server started next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChildFailed(RuntimeError):
    """The child exited non-zero or printed no JSON line; ``last_line`` is its stderr's last line, ``tail`` more."""

    def __init__(self, argv: list[str], returncode: int, stderr: str):
        lines = stderr.strip().splitlines()
        self.last_line = lines[-1] if lines else "no output"
        self.tail = stderr[-3000:]
        super().__init__(f"{' '.join(argv[:4])}... exited {returncode}: {self.last_line}")


def run_json_child(script: str | Path, args: list[str], env: dict[str, str] | None = None,
                   cwd: str | Path | None = None, python: str = sys.executable) -> dict:
    """Run ``python script *args`` and return the last stdout line that is a JSON object; raise
    :class:`ChildFailed` when it fails or prints none (its stdout's other lines, logs, are passed over)."""
    argv = [python, str(script), *args]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise ChildFailed(argv, done.returncode, done.stderr)
    return json.loads(lines[-1])
