"""Console output of the ``embedkit`` command: results on stdout (the commands print them), everything else
on stderr: embedkit's own progress lines and bars by default; the dependencies' load reports, debug lines,
deprecation warnings and weight-initialisation notices only with ``-v``.

Only the CLI calls this; a program using embedkit as a library keeps its own logging setup.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

# Libraries that report at INFO/WARNING on every model load (transformers prints a LOAD REPORT table as a
# warning; sentence-transformers and PyLate log each module they build; bm25s sets its own logger to DEBUG
# when imported, so a level set here beforehand does not hold: the handler filters instead).
NOISY = ("transformers", "sentence_transformers", "pylate", "datasets", "huggingface_hub", "torch", "faiss",
         "bm25s", "fast_plaid", "accelerate", "urllib3", "filelock", "matplotlib", "PIL", "httpx", "httpcore")


class _Quiet(logging.Filter):
    """Let through embedkit's records, and the dependencies' errors only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "embedkit" or record.name.startswith("embedkit."):
            return True
        return record.levelno >= logging.ERROR


class _Format(logging.Formatter):
    """embedkit's progress as plain lines; its warnings and errors, and anything from a dependency, labelled."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        own = record.name == "embedkit" or record.name.startswith("embedkit.")
        if own and record.levelno == logging.INFO:
            return message
        if own:
            return f"{record.levelname.lower()}: {message}"
        return f"{record.levelname} {record.name}: {message}"


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (as :data:`logging.lastResort` does), not
    to the stream it was created with: a caller that swaps stderr (pytest's capture, a notebook) and closes the
    old one gets no "I/O operation on closed file" from a later log line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr: embedkit at INFO (DEBUG with ``verbose``), the dependencies only with ``verbose``."""
    handler = _Stderr()
    handler.setFormatter(_Format() if not verbose else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_Quiet())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_embedkit", False):
            root.removeHandler(old)
    handler._embedkit = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("embedkit").setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # also transformers' "Loading weights" bars
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    if "transformers" in sys.modules:  # imported already (by a caller of main()): the environment is read
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def end_progress_lines() -> None:
    """Close the progress bars still open (an error raised inside a loop a bar wraps leaves its bar open, on a
    line without an end), so that the error printed next starts a line of its own."""
    tqdm = sys.modules.get("tqdm")  # never imported here: a bar can only be open when something else imported it
    if tqdm is None:
        return
    for bar in list(getattr(tqdm.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error being reported
            continue
    sys.stderr.flush()


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm progress bar on stderr (``tqdm(**kwargs)``). Where stderr is not a terminal (a log file, CI, a
    pipe) the bar writes whole lines instead of redrawing one: one line per update it shows (at most every 30 s
    unless ``mininterval`` says otherwise) and its last state once (tqdm's own closing redraw would repeat it)."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(**kwargs)
    kwargs.setdefault("mininterval", 30.0)
    kwargs.pop("dynamic_ncols", None)
    return _line_bar()(**kwargs)


def _line_bar() -> type:
    from tqdm.std import tqdm

    class LineBar(tqdm):
        """tqdm writing each state it shows as one line, and never the same state twice."""

        _shown: int | None = None

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if msg == "" or self.n == self._shown:  # a clearing write, or the state the last line shows
                return True
            self._shown = self.n
            self.fp.write(self.__str__() + "\n")
            self.fp.flush()
            return True

        def close(self) -> None:
            if getattr(self, "disable", True):
                return
            if self.leave is not False:
                self.display()  # the final state, unless the last line already shows it
            self.disable = True
            self._decr_instances(self)

    return LineBar
