"""``embedkit index``: encode a corpus and build an index folder (the recipe's index: section as flags), or add
to, delete from, push or pull an existing one; prints the folder or what it now holds."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing

from embedkit.cli.helptext import command

logger = logging.getLogger("embedkit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.fields import add_fields
    from embedkit.cli.options import add_colbert_library
    from embedkit.config import IndexConfig, Kind

    p = command(sub, "index", "encode a corpus and build an index folder")
    p.add_argument("--model", default=None,
                   help="The model folder or Hugging Face id that encodes the documents (none for --backend bm25).")
    p.add_argument("--kind", choices=list(typing.get_args(Kind)), default=None,
                   help="dense or colbert. Default: read from the model folder.")
    p.add_argument("--overwrite", action="store_true", help="Replace an index that --index-dir already holds.")
    p.add_argument("--add", "--append", dest="add", action="store_true",
                   help="Add the corpus's documents to the existing --index-dir.")
    p.add_argument("--delete", nargs="+", metavar="ID", default=None,
                   help="Remove these document ids from --index-dir (no model needed).")
    p.add_argument("--push", action="store_true",
                   help="Copy the points of the qdrant index --index-dir from its local shard to the server "
                        "collection --qdrant-url / --qdrant-collection, which it then searches.")
    p.add_argument("--pull", action="store_true",
                   help="Copy the server collection the qdrant index --index-dir searches into a local shard in "
                        "its folder, which it then searches.")
    p.add_argument_group("corpus and index folder")
    add_colbert_library(p.add_argument_group("encoding"))
    add_fields(p, IndexConfig, "index", group="encoding")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.cli.fields import from_args
    from embedkit.cli.options import colbert_library
    from embedkit.config import IndexConfig
    from embedkit.data.inputs import check_local
    from embedkit.index.registry import check_available

    cfg = dataclasses.replace(from_args(args, IndexConfig, "index"), colbert_library=colbert_library(args))
    check_available(cfg.backend)
    if args.delete:
        check_local(cfg.output_dir, "--index-dir", "folder")
        from embedkit.index.build import delete_documents

        num = delete_documents(cfg.output_dir, args.delete)
        logger.info("deleted %d documents", len(set(args.delete)))
        print(f"index {cfg.output_dir} now holds {num} documents")
        return 0
    if args.push or args.pull:
        check_local(cfg.output_dir, "--index-dir", "folder")
        from embedkit.index.qdrant_sync import pull, push

        num = push(cfg.output_dir, cfg.qdrant, args.overwrite) if args.push else pull(cfg.output_dir, args.overwrite)
        print(f"index {cfg.output_dir}: {num} points {'pushed to' if args.push else 'pulled into'} "
              f"{cfg.qdrant.url or 'its local shard'}")
        return 0
    from embedkit.data.corpus import Corpus
    from embedkit.index.make import check_index_inputs, make_index

    check_index_inputs(cfg, args.model, add=args.add)
    corpus = Corpus(cfg.corpus, subset=cfg.subset, split=cfg.split)
    if args.add:
        from embedkit.index.build import add_documents

        num = add_documents(cfg.output_dir, corpus, args.model, cfg)
        print(f"index {cfg.output_dir} now holds {num} documents")
        return 0
    path = make_index(args.model, corpus, cfg, args.kind, overwrite=args.overwrite)
    if path is not None:
        print(path)
    return 0
