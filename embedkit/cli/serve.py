"""``embedkit serve``: an index and its model over HTTP (the server lives in :mod:`embedkit.serve`)."""

from __future__ import annotations

import argparse
import dataclasses

from embedkit.cli.helptext import QUERY_MODEL_HELP, command

# Given as typed, never read as YAML: a key like 0123 or 'yes' must stay the text it is.
_RAW_TEXT_FIELDS = ("api_key", "served_model_name")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.fields import add_fields
    from embedkit.cli.options import add_searcher_fields, count
    from embedkit.config import ServeConfig

    p = command(sub, "serve", "HTTP API over an index: /search, /v1/embeddings, /rerank, /metrics")
    p.add_argument("--index-dir", required=True, metavar="DIR", help="The index folder to search.")
    p.add_argument("--model", default=None, help=QUERY_MODEL_HELP)
    p.add_argument("--batch-size", type=count, default=8, metavar="INT",
                   help="Query encoding batch size: the texts of a micro-batch are sorted by length and run in "
                        "passes of this size, so short queries are not padded to the longest one (8 gave 2-3x the "
                        "throughput of 64 on stdlib docstring queries with MiniLM) (default: 8).")
    add_searcher_fields(p)
    group = p.add_argument_group("server (address, security, limits, batching, threads)")
    add_fields(group, ServeConfig, "serve", skip=_RAW_TEXT_FIELDS)
    for f in dataclasses.fields(ServeConfig):
        if f.name in _RAW_TEXT_FIELDS:
            group.add_argument("--" + f.name.replace("_", "-"), dest=f"serve.{f.name}", default=argparse.SUPPRESS,
                               metavar="TEXT", help=f"{f.metadata['help']} (default: {f.default!r})")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.cli.fields import from_args
    from embedkit.cli.options import colbert_library, model_backend, retrieve_config
    from embedkit.config import ServeConfig
    from embedkit.serve.startup import run_server

    config = from_args(args, ServeConfig, "serve")
    run_server(args.index_dir, retrieve_config(args), args.model, args.batch_size, config,
               colbert_library=colbert_library(args), model_backend=model_backend(args))
    return 0
