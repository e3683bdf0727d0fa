"""``embedkit search``: search an index by query text; prints the hits (a table, or JSON with ``--json``)."""

from __future__ import annotations

import argparse
import json

from embedkit.cli.helptext import QUERY_MODEL_HELP, command
from embedkit.errors import EmbedkitError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.options import add_searcher_fields, count

    p = command(sub, "search", "search an index by query text")
    p.add_argument("query", nargs="+", help="One or more queries (quote each).")
    p.add_argument("-k", type=count, default=10, help="Hits to show per query (default: 10).")
    p.add_argument("--json", action="store_true",
                   help="Print the hits as JSON (query, then id, score and text of each hit).")
    p.add_argument("--explain", action="store_true",
                   help="Sparse indexes: show the terms each hit matched, with their share of its score.")
    p.add_argument("--index-dir", required=True, metavar="DIR", help="The index folder to search.")
    p.add_argument("--model", default=None, help=QUERY_MODEL_HELP)
    p.add_argument("--batch-size", type=count, default=64, metavar="INT",
                   help="Query encoding batch size (default: 64).")
    add_searcher_fields(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.cli.options import colbert_library, model_backend, retrieve_config
    from embedkit.data.inputs import check_local, check_local_or_hub

    check_local(args.index_dir, "--index-dir", "folder")
    if args.model:
        check_local_or_hub(args.model, "--model", "model")
    from embedkit.retrieve.retriever import open_retriever

    index = open_retriever(args.index_dir, retrieve_config(args), args.model, batch_size=args.batch_size,
                           colbert_library=colbert_library(args), model_backend=model_backend(args))
    queries = args.query
    explain = getattr(index.searched_index, "explain", None) if args.explain else None
    if args.explain and explain is None:
        raise EmbedkitError(f"--explain shows the matching terms of sparse indexes; {args.index_dir} is a "
                            f"{index.searched_index.manifest.kind} index")
    results = index.search(queries, k=args.k)
    terms = [_matched_terms(index, explain, q, len(hits)) if explain else [None] * len(hits)
             for q, hits in zip(queries, results)]
    if args.json:
        print(json.dumps([{"query": q, "hits": [h.__dict__ | ({"terms": t} if t is not None else {})
                                                for h, t in zip(hits, ts)]}
                          for q, hits, ts in zip(queries, results, terms)], ensure_ascii=False, indent=2))
        return 0
    for query, hits, ts in zip(queries, results, terms):
        print(f"query: {query}")
        for rank, (hit, t) in enumerate(zip(hits, ts), start=1):
            snippet = " ".join((hit.text or "").split())[:100]
            print(f"{rank:3d}. {hit.score:8.4f}  {hit.id}  {snippet}")
            if t is not None:
                print("      matched: " + ", ".join(f"{term} {score:.3f}" for term, score in t))
    return 0


def _matched_terms(index, explain, query: str, count: int) -> list:
    """The top terms each of a query's ``count`` hits matched (a sparse index's ``explain``)."""
    _, positions = index.search_positions([query], count)
    return explain(query, [int(p) for p in positions[0][:count]])
