"""What ``embedkit --help`` and each sub-command's ``--help`` say: a description and examples per
sub-command (the flags' own help comes from the recipe fields, see :mod:`embedkit.cli.fields`), and the help of a
flag that more than one sub-command defines alike."""

from __future__ import annotations

import argparse
import textwrap

DESCRIPTION = """\
embedkit turns an encoder (ModernBERT, MiniLM, any sentence-transformers model) into a retriever:
fine-tune a dense (one vector per text) or ColBERT (one vector per token) model from a YAML recipe,
index a corpus (FAISS flat/HNSW/IVF-PQ, PLAID, exact MaxSim, or BM25), and score it on BEIR-format
data and named benchmarks (BEIR, MLDR, CodeSearchNet), with a report next to the ModernBERT paper.

  embedkit run recipe.yaml          all stages of a recipe: train, index, eval, report (each skipped
                                    when done, resumed when interrupted)
  embedkit quickstart               offline demo on Python code search, a few minutes on a CPU

Every sub-command has --help; -v shows the libraries' own logs and warnings. Results go to stdout,
progress and messages to stderr."""

# (description, examples) per sub-command.
HELP: dict[str, tuple[str, str]] = {
    "run": ("Run a recipe's stages in order: train (when data.train is set) → index (when index.corpus is "
            "set) → eval (eval.data) → report. A stage whose output already exists with the same settings is "
            "skipped; an interrupted stage resumes. The model goes to output_dir; the index, results and report "
            "to the run folder beside it (<output_dir>-run/). A model trained with other settings is never "
            "replaced unless --overwrite. Prints a table of the stages and the scores.",
            "embedkit run recipes/quickstart.yaml\n"
            "embedkit run recipe.yaml --stages index,eval --set index.backend=hnsw\n"
            "embedkit run recipe.yaml --set eval.k=10 --set report.metric=recall@k"),
    "train": ("Fine-tune a retriever from a YAML recipe and write the model folder (output_dir). A folder that "
              "already holds the model this recipe trains is kept as it is; one trained with other settings is "
              "refused unless --overwrite. An interrupted run resumes from its last checkpoint.",
              "embedkit train recipes/modernbert-base-dpr-msmarco.yaml\n"
              "embedkit train recipe.yaml --set training.learning_rate=5e-5 --set output_dir=runs/lr5e-5\n"
              "embedkit train recipe.yaml --dry-run"),
    "index": ("Encode a corpus and build an index folder (the recipe's index: section as flags). The same "
              "command run again keeps an index built from the same documents with the same model and "
              "settings, and refuses to replace another one unless --overwrite. --add and --delete change an "
              "existing index.",
              "embedkit index --model runs/minilm --corpus data/corpus.jsonl --index-dir indexes/code\n"
              "embedkit index --model runs/minilm --corpus more.jsonl --index-dir indexes/code --add\n"
              "embedkit index --index-dir indexes/code --delete doc-17 doc-42\n"
              "embedkit index --backend bm25 --corpus data --index-dir indexes/code-bm25"),
    "search": ("Search an index by query text and print the hits (rank, score, id, text).",
               "embedkit search --index-dir indexes/code \"how do I parse a date\" -k 5\n"
               "embedkit search --index-dir indexes/code \"parse a date\" --fuse-with bm25 --json"),
    "serve": ("Serve an index and its model over HTTP: POST /search, POST /v1/embeddings and GET /v1/models "
              "(OpenAI-compatible), POST /rerank (Infinity / Cohere shape), GET /metrics (Prometheus), "
              "GET|HEAD /health, GET /info. Loopback only by default; to expose it, bind --host 0.0.0.0 and set "
              "EMBEDKIT_API_KEY (every route but /health then needs 'Authorization: Bearer KEY'). Limits left "
              "unset follow the model and the index.",
              "embedkit serve --index-dir indexes/code --port 8000\n"
              "curl -s localhost:8000/search -H 'content-type: application/json' -d '{\"query\": \"parse a date\"}'\n"
              "EMBEDKIT_API_KEY=secret embedkit serve --index-dir indexes/code --host 0.0.0.0"),
    "eval": ("Score a model (or bm25) on a BEIR-format folder, or on named benchmarks (embedkit benchmarks "
             "lists them). Prints nDCG@10, recall and MAP at the depth -k, and MRR@10 as JSON; --output keeps "
             "every setting that shapes a number in a results JSON that embedkit report reads.",
             "embedkit eval --model runs/minilm --data data/code --output results/minilm/code.json\n"
             "embedkit eval --model bm25 --data data/code -k 10\n"
             "embedkit eval --model runs/minilm --benchmark beir-dev4,csn/python --output-dir results"),
    "export": ("Convert a ColBERT model saved by sentence-transformers' MultiVectorEncoder (what embedkit trains "
               "with colbert.library: sentence-transformers) into PyLate's folder layout, file by file (runs in "
               "either environment, loads no model). PyLate folders need no export: MultiVectorEncoder reads them "
               "as they are.",
               "embedkit export --format pylate runs/my-colbert runs/my-colbert-pylate"),
    "quickstart": ("The offline demo: extract docstring → code pairs from the installed packages, fine-tune the "
                   "packaged all-MiniLM-L6-v2 on them, index Python stdlib functions, and compare it with BM25 and "
                   "the untrained model (dense, then ColBERT). Reruns skip what is done.",
                   "embedkit quickstart\n"
                   "embedkit quickstart --train-size 500 --eval-size 500 --max-steps 10 --no-colbert"),
    "benchmarks": ("List the named benchmarks: their source, the split scored, their size and metric, and the "
                   "groups (beir, beir-dev4, csn, paper).",
                   "embedkit benchmarks"),
    "report": ("Write report.md and report.png from results JSON files: each dataset's score, model by model, "
               "and, for the ModernBERT paper's sets, the means beside the paper's Table 1. Prints the markdown.",
               "embedkit report runs/minilm-run/eval --output report\n"
               "embedkit report results/* --output report --metric recall@k"),
    "mine": ("Add hard negatives to (query, positive) training data, mined with a dense model or BM25.",
             "embedkit mine --model bm25 --data pairs.jsonl --output mined.jsonl --num-negatives 3"),
    "sweep": ("Train a recipe over a grid of settings (the product of every --set-grid), score each variant "
              "on eval.data and keep the best by mean nDCG@10.",
              "embedkit sweep recipe.yaml --set-grid training.learning_rate=1e-5,3e-5,8e-5"),
}


# ``--model`` of search and serve.
QUERY_MODEL_HELP = ("The model that encodes queries. Default: the one the index was built with (another model is "
                    "refused).")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions wrapped as paragraphs, examples kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return "\n".join(textwrap.fill(part, width, initial_indent=indent, subsequent_indent=indent)
                         if not part.startswith("  ") else part for part in text.split("\n"))


def command(sub: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    description, examples = HELP[name]
    epilog = "examples:\n" + "".join(f"  {line}\n" for line in examples.splitlines())
    return sub.add_parser(name, help=summary, description=description, epilog=epilog, formatter_class=_Formatter)
