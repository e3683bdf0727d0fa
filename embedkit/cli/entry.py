"""``main``: parse, configure logging, run the sub-command's handler, and turn what a user can cause (an
:class:`~embedkit.errors.EmbedkitError`, an OS error the checks could not foresee) into one error line and exit
code 2; Ctrl-C is 130, a closed stdout pipe is not an error."""

from __future__ import annotations

import sys

from embedkit.errors import EmbedkitError


def print_error(message: str) -> int:
    """Print the one error line (on a line of its own: open progress bars are ended first); exit code 2."""
    from embedkit.quiet import end_progress_lines

    end_progress_lines()
    print(f"embedkit: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from embedkit.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    from embedkit.quiet import configure_logging

    configure_logging(verbose=args.verbose)
    try:
        return args.func(args)
    except EmbedkitError as exc:
        return print_error(str(exc))
    except KeyboardInterrupt:
        print("embedkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into a reader that stopped early (| head): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a path the checks before the work could not foresee (a disk full, a race)
        if exc.errno is None or exc.strerror is None:
            raise
        where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        return print_error(f"{where}: {exc.strerror}" if where else exc.strerror)
