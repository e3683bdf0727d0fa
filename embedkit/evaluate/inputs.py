"""What ``evaluate`` and ``run_benchmarks`` read and write, checked before any model loads: inputs that are
there, outputs apart from every input and writable, and the optional MTEB result files' library."""

from __future__ import annotations

from embedkit.artifacts import check_apart, check_results_file, check_writable
from embedkit.data.inputs import check_local, check_local_or_hub
from embedkit.errors import EmbedkitError
from embedkit.index.registry import NO_MODEL


def check_eval_paths(model: str, data: str | None = None, output: str | None = None, run_file: str | None = None,
                     mteb_results: str | None = None, index_dir: str | None = None,
                     benchmark_dir: str | None = None) -> None:
    """Check an evaluation's paths; ``benchmark_dir`` is the results folder of named benchmarks (``data`` is then
    optional: where their BEIR folders are kept).

    Raises:
        EmbedkitError: an input that is not there, an output that equals, holds or lies inside an input or cannot
            be written, MTEB result files asked for without ``mteb`` installed, or neither ``data`` nor benchmarks.
    """
    if model != NO_MODEL:
        check_local_or_hub(model, "--model", "model")
    if data:
        check_local(data, "--data", "folder")
    inputs = [("--data", data), ("--model", model)]
    for flag, path in (("--output", output), ("--run-file", run_file)):
        check_apart(path, flag, inputs)
    check_results_file(output, "--output")
    if run_file:
        check_writable(run_file, "--run-file")
    if mteb_results:
        from embedkit.evaluate.mteb_results import check_mteb

        check_apart(mteb_results, "--mteb-results", inputs)
        check_writable(mteb_results, "--mteb-results", "folder")
        check_mteb()
    if benchmark_dir is not None:
        check_apart(benchmark_dir, "--output-dir", inputs)
        check_writable(benchmark_dir, "--output-dir", "folder")
        return
    if not data:
        raise EmbedkitError("eval needs --data (a BEIR-format folder) or --benchmark NAME")
    if index_dir:
        check_local(index_dir, "--index-dir", "folder")
