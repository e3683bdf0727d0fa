"""Options of the commands that are not recipe sections: ``embedkit serve`` (:class:`ServeConfig`) and
``embedkit mine`` (:class:`MiningOptions`); one flag per field, checked like recipe fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from embedkit.config.fields import Bounded, _help
from embedkit.errors import EmbedkitError

API_KEY_ENV = "EMBEDKIT_API_KEY"


@dataclass
class ServeConfig(Bounded):
    """``embedkit serve``: address, security, limits, batching and threads (one flag per field; not a recipe
    section). Limits left at null follow the served model and index (see docs/guides/serving.md)."""

    host: str = _help("Address to bind. 127.0.0.1 (loopback) is reachable from this machine only; 0.0.0.0 or a "
                      "public address exposes the server: set an API key.", "127.0.0.1")
    port: int = _help("TCP port; it is bound before the model loads, so a port in use fails at once.", 8000,
                      low=0, high=65535)
    api_key: str | None = _help(f"Bearer token every route but /health requires (Authorization: Bearer KEY). "
                                f"Prefer the {API_KEY_ENV} environment variable: a flag shows in `ps`.", None)
    allowed_hosts: list[str] = _help(
        "Host header values accepted besides the bound address (port ignored). Bound to loopback, only "
        "localhost, 127.0.0.1, [::1] and these are served (a DNS-rebinding page sends its own name); elsewhere "
        "any Host is served unless this is set. '*' turns the check off.", factory=list, flag="--allowed-host")
    cors_origins: list[str] = _help("Browser origins allowed to call the API (CORS), e.g. https://app.example; "
                                    "none: no CORS headers, browsers on other origins cannot read replies.",
                                    factory=list, flag="--cors-origin")
    docs: bool = _help("Serve the interactive API docs and schema (/docs, /redoc, /openapi.json).", False)
    served_model_name: str | None = _help(
        "Model id of /v1/models and the 'model' field clients send; null = the model folder's name or hub id.",
        None)
    threads: int = _help(
        "Threads for torch and FAISS (the tokenizer keeps one). 1 keeps single-query latency stable on a machine "
        "shared with other work (with more, torch's threads wait for busy cores: 15 ms queries took up to 0.5 s "
        "in our measurements); raise it on a machine the server has to itself.", 1, low=1)
    max_batch: int = _help("Most texts (queries, inputs, documents) computed together from concurrent requests "
                           "in one model call (its tokens are bounded by --slice-ms); a larger request is computed in "
                           "slices, in turn with the others.", 64, low=1)
    slice_ms: float = _help("Model time one batch aims at: batches are filled by estimated tokens (about 4 "
                            "characters each) up to what the model computes in this long at the rate measured on "
                            "recent batches, so a large request is computed in slices of about this long and a "
                            "single query waits about one slice beside it.", 100.0, above=0)
    max_wait_ms: float = _help("How long a batch waits for more requests to join it, only while others are "
                               "already queued (a lone request starts at once).", 2.0, low=0)
    max_queue: int = _help("Texts waiting for the model across all requests; a request that would exceed it "
                           "gets 503 with Retry-After.", 2048, low=1)
    request_timeout: float = _help("Seconds a request may take (reading its body, waiting, computing) before "
                                   "it is answered 503 (or 408 for a slow body) and its work dropped. A request "
                                   "that cannot finish in time at the measured rate is refused when it arrives "
                                   "(503 with Retry-After, or 413 if it alone takes longer). 180 s keeps the "
                                   "largest request the other limits allow (1,024 texts of 2,560 characters: 105 s "
                                   "with MiniLM on 2 cores shared with other jobs) reachable.", 180.0, above=0)
    max_body_bytes: int = _help("Largest request body (413 above it, refused before it is read).", 4 * 1024 * 1024,
                                low=1)
    max_header_bytes: int = _help("Largest request head (request line and headers together), counted as it "
                                  "arrives: 431 and the connection closed past it, so no more is ever held.",
                                  64 * 1024, low=1024)
    max_headers: int = _help("Most header lines in one request (431 above it).", 100, low=1)
    header_timeout: float = _help("Seconds a connection has to send a complete request head (from connecting, and "
                                  "after each reply); past it the connection is closed (408 if it sent part of "
                                  "one). Bodies have --request-timeout.", 10.0, above=0)
    max_connections: int = _help("Open connections held at once; one more is answered 503 with Retry-After and "
                                 "closed.", 1024, low=1)
    max_texts: int = _help("Texts per request: /search queries, /v1/embeddings inputs, /rerank documents.", 1024, low=1)
    max_chars: int | None = _help("Characters per text; null = 10 per token of the model's max_seq_length "
                                  "(all-MiniLM-L6-v2: 256 tokens, 2560 characters), past which it reads nothing.",
                                  None, low=1)
    max_k: int = _help("Largest k of /search.", 1000, low=1)
    max_hits: int | None = _help("Largest queries × k of one /search request; null = what keeps a reply with "
                                 "texts near 8 MB at the index's mean document size (1,000 to 100,000).", None, low=1)
    access_log: bool = _help("Log one line per request (client, method, path, status, milliseconds, bytes) at "
                             "info level on stderr.", True, flag="--no-access-log",
                             flag_help="Turn off the access log: no line per request (by default each request logs "
                             "client, method, path, status, milliseconds and bytes on stderr).")

    def __post_init__(self) -> None:
        super().__post_init__()  # the fields' bounds
        if self.api_key is not None and (not self.api_key.strip() or not self.api_key.isprintable()):
            raise EmbedkitError("serve api_key: must be printable text, not empty")


@dataclass
class MiningOptions(Bounded):
    """``embedkit mine``: which candidates become hard negatives (one flag per field; not a recipe section).

    Only ranks in ``[range_min, range_max)`` are considered, the query's own positives never; a candidate must
    pass every margin and score bound that is set. Rows left with fewer than ``num_negatives`` are dropped.
    """

    num_negatives: int = _help("Negatives written per row.", 3, low=1)
    range_min: int = _help("Skip this many top candidates (near-duplicates, unlabeled positives).", 0, low=0)
    range_max: int = _help("Consider candidates up to this rank.", 50, low=1)
    relative_margin: float | None = _help(
        "Keep a negative only if it scores at most (1 - margin) x the positive's score (0.05: at most 0.95 x).",
        None, flag="--margin", metavar="MARGIN", low=0, high=1)
    absolute_margin: float | None = _help("Keep a negative only if it scores at most the positive's score minus "
                                          "this.", None, metavar="MARGIN", low=0)
    max_score: float | None = _help("Drop candidates scoring above this.", None, metavar="SCORE")
    min_score: float | None = _help("Drop candidates scoring below this.", None, metavar="SCORE")
    sampling: Literal["top", "random"] = _help("top: the best-scoring valid candidates; random: any valid ones.",
                                               "top")
    cross_encoder: str | None = _help("Rescore the candidates (and the positive) with this CrossEncoder before the "
                                      "filters, as the NV-Retriever paper recommends.", None, metavar="MODEL")
    teacher_scores: bool = _help(
        "Write teacher scores for distillation instead of pairs: --output is then a new folder of queries.jsonl, "
        "documents.jsonl and train.jsonl (query_id, document_ids: the positive then the negatives, scores: the "
        "cross-encoder's), the layout data.format: distillation reads (loss splade_distillation, or ColBERT's). "
        "Needs --cross-encoder.", False)
    batch_size: int = _help("Encoding (and cross-encoder) batch size.", 32, low=1)
    use_faiss: bool = _help("Dense models: search with FAISS instead of a full similarity matrix.", True,
                            flag="--no-faiss", flag_help="Dense models: an exact similarity matrix instead of FAISS "
                            "search.")
    seed: int = _help("Seed of random sampling.", 42)

    def check(self) -> None:
        if self.num_negatives < 1:
            raise EmbedkitError(f"num_negatives must be at least 1, got {self.num_negatives}")
        if self.range_min < 0 or self.range_max <= self.range_min:
            raise EmbedkitError(f"need 0 <= range_min < range_max, got {self.range_min} and {self.range_max}")
        if self.range_max - self.range_min < self.num_negatives:
            raise EmbedkitError(f"the rank range [{self.range_min}, {self.range_max}) holds fewer than "
                                f"{self.num_negatives} candidates")
        if self.sampling not in ("top", "random"):
            raise EmbedkitError(f"sampling must be 'top' or 'random', got {self.sampling!r}")
        if self.batch_size < 1:
            raise EmbedkitError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.teacher_scores and not self.cross_encoder:
            raise EmbedkitError("teacher_scores: the scores come from a cross-encoder; give --cross-encoder MODEL")
