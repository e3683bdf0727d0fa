"""Console output: progress bars on a stderr that is not a terminal."""

from __future__ import annotations

import io
import sys


def test_a_bar_on_a_log_writes_lines_and_its_last_state_once(monkeypatch):
    from embedkit.quiet import progress_bar

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)  # not a terminal
    with progress_bar(total=3, desc="encoding", mininterval=0) as bar:
        for _ in range(3):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split("|")[0].strip() for line in lines] == ["encoding:   0%", "encoding:  33%", "encoding:  67%",
                                                             "encoding: 100%"]  # 100% once, not twice
    log.truncate(0)
    log.seek(0)
    bar = progress_bar(total=2, desc="training")  # default 30 s between lines: the first and last state only
    bar.update(1)
    bar.update(1)
    bar.close()
    assert [line.split("|")[0].strip() for line in log.getvalue().splitlines()] == ["training:   0%", "training: 100%"]
