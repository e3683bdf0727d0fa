"""``embedkit report``: report.md and report.png from results JSON files; prints the markdown."""

from __future__ import annotations

import argparse
import logging

from embedkit.cli.helptext import command

logger = logging.getLogger("embedkit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.fields import add_fields
    from embedkit.config import ReportConfig

    p = command(sub, "report", "markdown + PNG of results, per dataset and next to the paper")
    p.add_argument("results", nargs="+", help="Results folders (searched recursively) or JSON files.")
    add_fields(p, ReportConfig, "report", skip=("baselines",))
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.cli.fields import from_args
    from embedkit.config import ReportConfig
    from embedkit.data.inputs import check_local
    from embedkit.evaluate.report import write_report

    cfg = from_args(args, ReportConfig, "report")
    for path in args.results:
        check_local(path, "results")
    from embedkit.artifacts import check_apart, check_writable

    check_apart(cfg.output_dir, "--output", [("results", path) for path in args.results])
    check_writable(cfg.output_dir, "--output", "folder")
    md_path, png_path = write_report(args.results, cfg.output_dir, cfg.metric)
    logger.info("wrote %s and %s", md_path, png_path)
    print(md_path.read_text(encoding="utf-8"), end="")
    return 0
