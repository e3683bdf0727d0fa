"""The package as users install it: build the wheel, install it (not editable) with the quickstart extra into a
fresh virtual environment, check the installed requirements (`pip check`) and run a small `embedkit quickstart`
from an empty folder, away from the checkout. The new environment borrows this one's torch (and what torch needs)
through a .pth file instead of downloading it again (eval/serve_bench.py's ``share_torch``); the rest comes from
the package index. Run by `make wheel-test` (and .ci/run) with the environment `make install` made; a few
minutes on 2 CPU cores, most of them the downloads.

Usage: python .ci/wheel_test.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, default=None,
                        help="Work in this folder and keep it (default: a temporary folder, removed after).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embedkit-wheel-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dist, env, empty = work / "dist", work / "venv", work / "empty"
        # built from a copy of the tracked files, so that the checkout gets no build/ or *.egg-info folders
        source = work / "source"
        source.mkdir(exist_ok=True)
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
        run(["tar", "-C", ROOT, "--null", "-T", "-", "-cf", work / "source.tar"], input=files)
        run(["tar", "-C", source, "-xf", work / "source.tar"])
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source])
        wheel = next(dist.glob("embedkit-*.whl"))
        if not (env / "bin" / "python").exists():
            venv.create(env, with_pip=True)
        sys.path.insert(0, str(ROOT / "eval"))
        from serve_bench import share_torch

        share_torch(env)
        python = env / "bin" / "python"
        run([python, "-m", "pip", "install", "-q", f"{wheel}[quickstart]"])
        run([python, "-m", "pip", "check"])
        empty.mkdir(exist_ok=True)
        environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        environ["HF_HUB_OFFLINE"] = "1"
        environ["EMBEDKIT_CACHE"] = str(work / "cache")  # nothing written outside the work folder
        # the installed package, not the checkout: the quickstart's recipes must come from the wheel
        run([python, "-c", "import embedkit, sys; assert 'site-packages' in embedkit.__file__, embedkit.__file__"],
            cwd=empty, env=environ)
        run([env / "bin" / "embedkit", "quickstart", "--workdir", "qs", "--train-size", "64", "--eval-size", "200",
             "--max-steps", "2", "--no-colbert"], cwd=empty, env=environ)
        table = (empty / "qs" / "results.md").read_text(encoding="utf-8")
        assert "MiniLM fine-tuned (dense)" in table, table
        print(f"wheel test passed: {wheel.name}\n{table}", file=sys.stderr)


if __name__ == "__main__":
    main()
