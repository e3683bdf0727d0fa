"""The ``embedkit`` command: one thin function per sub-command; the library does the work."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from embedkit.errors import EmbedkitError

logger = logging.getLogger("embedkit")


def _train(args: argparse.Namespace) -> int:
    from embedkit.config import load_recipe
    from embedkit.train.run import train

    recipe = load_recipe(args.recipe, args.set or [])
    if args.dry_run:
        print(recipe.to_yaml(), end="")
        return 0
    path = train(recipe, overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints)
    print(f"model saved to {path}")
    return 0


def _faiss_options(args: argparse.Namespace):
    from embedkit.index.faiss_index import FaissOptions

    return FaissOptions(index_type=args.index_type, hnsw_m=args.hnsw_m, nlist=args.nlist, pq_m=args.pq_m,
                        nprobe=args.nprobe)


def _backend_options(args: argparse.Namespace, kind: str):
    if kind == "dense":
        return _faiss_options(args)
    from embedkit.index.colbert_backend import cli_options

    return cli_options(args)


def _index(args: argparse.Namespace) -> int:
    from embedkit.data.corpus import Corpus
    from embedkit.distributed import dist_context
    from embedkit.index.build import BuildOptions, build_index, detect_kind
    from embedkit.models.loading import resolve_model

    model = resolve_model(args.model)
    kind = args.kind or detect_kind(model)
    corpus = Corpus(args.corpus, subset=args.subset, split=args.split)
    if args.append:
        from embedkit.index.colbert_backend import add_documents

        num = add_documents(args.index_dir, corpus, model, batch_size=args.batch_size, unpadded=args.unpadded)
        print(f"index {args.index_dir} now holds {num} documents")
        return 0
    with dist_context() as (rank, world_size):
        options = BuildOptions(batch_size=args.batch_size, shard_size=args.shard_size, unpadded=args.unpadded,
                               max_length=args.max_length, truncate_dim=args.truncate_dim, overwrite=args.overwrite,
                               backend_options=_backend_options(args, kind), rank=rank, world_size=world_size)
        if world_size > 1:
            from embedkit.distributed import build_index_distributed

            path = build_index_distributed(model, corpus, args.index_dir, kind, options)
        else:
            path = build_index(model, corpus, args.index_dir, kind=kind, options=options)
    if rank == 0:
        print(f"index written to {path}")
    return 0


def _retrieve_config(args: argparse.Namespace):
    from embedkit.config import RetrieveConfig

    return RetrieveConfig(fuse_with=args.fuse_with or [], fusion=args.fusion, rrf_k=args.rrf_k, weights=args.weights,
                          fusion_depth=args.fusion_depth, rerank=args.rerank, rerank_model=args.rerank_model,
                          rerank_index=args.rerank_index, rerank_top_n=args.rerank_top_n,
                          rerank_batch_size=args.rerank_batch_size)


def _search(args: argparse.Namespace) -> int:
    from embedkit.retrieve.retriever import open_retriever

    index = open_retriever(args.index_dir, _retrieve_config(args), args.model, batch_size=args.batch_size)
    queries = args.query
    results = index.search(queries, k=args.k)
    if args.json:
        print(json.dumps([{"query": q, "hits": [h.__dict__ for h in hits]} for q, hits in zip(queries, results)],
                         ensure_ascii=False, indent=2))
        return 0
    for query, hits in zip(queries, results):
        print(f"query: {query}")
        for rank, hit in enumerate(hits, start=1):
            snippet = " ".join((hit.text or "").split())[:100]
            print(f"{rank:3d}. {hit.score:8.4f}  {hit.id}  {snippet}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from embedkit.serve import serve
    except ImportError:
        raise EmbedkitError("embedkit serve needs FastAPI and uvicorn: pip install 'embedkit[serve]'") from None
    from embedkit.retrieve.retriever import open_retriever

    index = open_retriever(args.index_dir, _retrieve_config(args), args.model, batch_size=args.batch_size)
    print(f"serving {args.index_dir} on http://{args.host}:{args.port} (POST /search, GET /health, GET /info)")
    serve(index, args.index_dir, host=args.host, port=args.port, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from embedkit.evaluate.runner import EvalOptions, evaluate

    options = EvalOptions(kind=args.kind, split=args.split, k=args.k, batch_size=args.batch_size, exact=args.exact,
                          use_cache=not args.no_cache, unpadded=args.unpadded, max_length=args.max_length,
                          truncate_dim=args.truncate_dim,
                          long_documents=args.long_documents, per_query=args.per_query,
                          retrieve=_retrieve_config(args))
    if args.benchmark:
        from embedkit.evaluate.benchmark_runner import run_benchmarks

        table = run_benchmarks(args.model, args.benchmark, options, output_dir=args.output_dir,
                               data=args.data, mldr_setting=args.mldr_setting)
        print(table)
        return 0
    if not args.data:
        raise EmbedkitError("eval needs --data (a BEIR-format folder) or --benchmark NAME")
    result = evaluate(args.model, args.data, options, output=args.output, run_file=args.run_file)
    keys = ("ndcg@10", "recall@100", "mrr@10", "map@100")
    extra = {k: result[k] for k in ("method", "chosen_weights") if k in result}
    print(json.dumps({k: round(result[k], 4) for k in keys} | {"num_queries": result["num_queries"],
                                                                 "num_documents": result["num_documents"]} | extra))
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from embedkit.quickstart import run_quickstart

    run_quickstart(workdir=args.workdir, train_size=args.train_size, eval_size=args.eval_size,
                   max_steps=args.max_steps, colbert=not args.no_colbert)
    return 0


def _benchmarks(args: argparse.Namespace) -> int:
    from embedkit.evaluate.benchmarks import list_benchmarks_table

    print(list_benchmarks_table())
    return 0


def _report(args: argparse.Namespace) -> int:
    from embedkit.evaluate.report import write_report

    md_path, png_path = write_report(args.results, args.output)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {md_path} and {png_path}")
    return 0


def _add_index_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("FAISS (dense)")
    g.add_argument("--index-type", choices=["flat", "hnsw", "ivfpq"], default="flat",
                   help="flat = exact inner product (default)")
    g.add_argument("--hnsw-m", type=int, default=32)
    g.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4·sqrt(N))")
    g.add_argument("--pq-m", type=int, default=None, help="PQ sub-quantisers (must divide the dimension)")
    g.add_argument("--nprobe", type=int, default=32)
    g = p.add_argument_group("PLAID (colbert)")
    g.add_argument("--nbits", type=int, default=4, help="bits per residual dimension")
    g.add_argument("--kmeans-niters", type=int, default=4)
    g.add_argument("--n-ivf-probe", type=int, default=8)
    g.add_argument("--n-full-scores", type=int, default=4096)
    g.add_argument("--exact", action="store_true", help="colbert: brute-force MaxSim instead of PLAID")


def _add_retrieve_options(p: argparse.ArgumentParser) -> None:
    """Flags of RetrieveConfig (the recipe's eval.retrieve section), one per field."""
    from embedkit.config import RetrieveConfig

    d = RetrieveConfig()
    g = p.add_argument_group("fusion and reranking")
    g.add_argument("--fuse-with", nargs="+", default=None, metavar="INDEX",
                   help="fuse with other indexes of the same corpus: index folders or 'bm25'")
    g.add_argument("--fusion", choices=["rrf", "weighted"], default=d.fusion)
    g.add_argument("--rrf-k", type=int, default=d.rrf_k)
    g.add_argument("--weights", type=float, nargs="+", default=None, help="weighted fusion: one per index")
    g.add_argument("--fusion-depth", type=int, default=d.fusion_depth, help="candidates per fused index")
    g.add_argument("--rerank", choices=["none", "colbert", "cross-encoder"], default=d.rerank)
    g.add_argument("--rerank-model", default=None, help="PyLate model (colbert) or CrossEncoder")
    g.add_argument("--rerank-index", default=None,
                   help="colbert: an --exact colbert index of the same corpus whose token vectors are reused")
    g.add_argument("--rerank-top-n", type=int, default=d.rerank_top_n)
    g.add_argument("--rerank-batch-size", type=int, default=d.rerank_batch_size)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedkit", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune a retriever from a YAML recipe")
    p.add_argument("recipe")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output_dir")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the resolved recipe and stop")
    p.set_defaults(func=_train)

    p = sub.add_parser("index", help="encode a corpus and build a FAISS (dense) or PLAID (colbert) index")
    p.add_argument("--model", required=True)
    p.add_argument("--corpus", required=True, help="BEIR folder, .jsonl/.parquet file, or hub dataset id")
    p.add_argument("--subset", default=None, help="hub dataset configuration")
    p.add_argument("--split", default=None, help="hub dataset split")
    p.add_argument("--index-dir", required=True)
    p.add_argument("--kind", choices=["dense", "colbert"], default=None, help="default: from the model folder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=8192, help="documents per resumable shard")
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--truncate-dim", type=int, default=None, help="dense Matryoshka models: keep N dimensions")
    p.add_argument("--unpadded", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--append", action="store_true", help="colbert: add the corpus to the existing --index-dir")
    _add_index_options(p)
    p.set_defaults(func=_index)

    p = sub.add_parser("search", help="search an index by query text")
    p.add_argument("--index-dir", required=True)
    p.add_argument("query", nargs="+")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--model", default=None, help="must be the model the index was built with")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true")
    _add_retrieve_options(p)
    p.set_defaults(func=_search)

    p = sub.add_parser("serve", help="HTTP search API over an index (POST /search, GET /health, GET /info)")
    p.add_argument("--index-dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=None, help="must be the model the index was built with")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=64, help="queries searched together from concurrent requests")
    p.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a request waits for others to batch")
    _add_retrieve_options(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser("eval", help="score a model (or bm25) on a BEIR folder or a named benchmark")
    p.add_argument("--model", required=True, help="model folder, hub id, or 'bm25'")
    p.add_argument("--data", default=None, help="BEIR-format folder")
    p.add_argument("--benchmark", default=None, help="e.g. beir, beir/scifact, mldr, csn/python (comma list)")
    p.add_argument("--output", default=None, help="results JSON")
    p.add_argument("--output-dir", default="results", help="with --benchmark: one JSON per dataset")
    p.add_argument("--run-file", default=None, help="also write a TREC run file")
    p.add_argument("--split", default="test")
    p.add_argument("--kind", choices=["dense", "colbert"], default=None)
    p.add_argument("-k", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--exact", action="store_true", help="colbert: brute-force MaxSim instead of PLAID")
    p.add_argument("--no-cache", action="store_true", help="re-encode the corpus even if cached")
    p.add_argument("--unpadded", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--truncate-dim", type=int, default=None, help="dense Matryoshka models: keep N dimensions")
    p.add_argument("--long-documents", choices=["truncate", "chunk-maxpool"], default="truncate")
    p.add_argument("--per-query", action="store_true", help="include per-query scores in the JSON")
    p.add_argument("--mldr-setting", choices=["ood", "id"], default="ood",
                   help="MLDR results: 'id' if the model was fine-tuned on MLDR's training split (the paper's "
                        "MLDR-ID column), else 'ood'")
    _add_retrieve_options(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("quickstart", help="offline demo: fine-tune MiniLM on code search and compare with BM25")
    p.add_argument("--workdir", default="runs/quickstart")
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--eval-size", type=int, default=2000)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--no-colbert", action="store_true")
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("benchmarks", help="list the named benchmarks")
    p.set_defaults(func=_benchmarks)

    p = sub.add_parser("report", help="markdown table + PNG chart of results next to the paper's")
    p.add_argument("results", nargs="+", help="results folders or JSON files")
    p.add_argument("--output", default="report")
    p.set_defaults(func=_report)

    from embedkit.train.commands import register  # mine, sweep

    register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except EmbedkitError as exc:
        print(f"embedkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embedkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
