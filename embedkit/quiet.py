"""Console output of the ``embedkit`` command: embedkit's own progress and results by default; the
dependencies' load reports, deprecation warnings and weight-initialisation notices only with ``-v``.

Only the CLI calls this; a program using embedkit as a library keeps its own logging setup.
"""

from __future__ import annotations

import logging
import os
import warnings

# Libraries that report at INFO/WARNING on every model load (transformers prints a LOAD REPORT table as a
# warning; sentence-transformers and PyLate log each module they build).
NOISY = ("transformers", "sentence_transformers", "pylate", "datasets", "huggingface_hub", "torch", "faiss",
         "bm25s", "fast_plaid", "accelerate", "urllib3", "filelock", "matplotlib", "PIL")


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
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
