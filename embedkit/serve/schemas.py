"""Request bodies: strict types (``k: true`` or ``k: "3"`` is a 422, not 1 or 3), unknown fields refused.

Sizes (texts, characters, k, hits) depend on the served model and the flags, so they are checked by the
routes with ``limits.py``, not here. The shapes follow what clients send: OpenAI's embeddings request, and
the rerank request of Infinity and Cohere (``query``, ``documents``, ``top_n``, ``return_documents``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STRICT = ConfigDict(extra="forbid", strict=True)


def not_empty(value: Any) -> Any:
    """A text field's validator: one text or a list of them, never an empty list."""
    if isinstance(value, list) and not value:
        raise ValueError("must not be an empty list")
    return value


def as_texts(value: str | list[str]) -> list[str]:
    """One text or a list of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


class SearchRequest(BaseModel):
    model_config = STRICT
    query: str | None = Field(None, description="One query (or use 'queries').")
    queries: list[str] | None = Field(None, description="Several queries (or use 'query').")
    k: int = Field(10, description="Hits per query (at most --max-k; queries × k at most --max-hits).")
    with_text: bool = Field(True, description="Include each hit's document text.")

    @model_validator(mode="after")
    def _one_of(self) -> "SearchRequest":
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' (a string) or 'queries' (a list of strings)")
        if self.queries is not None and not self.queries:
            raise ValueError("'queries' is empty")
        return self

    @property
    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``POST /v1/embeddings`` body, plus ``input_type`` (which of the model's prompts to use)."""

    model_config = STRICT
    input: str | list[str] = Field(description="A text or a list of texts.")
    model: str | None = Field(None, description="The served model's id (GET /v1/models); optional.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: little-endian float32 bytes, base64-encoded.")
    dimensions: int | None = Field(None, ge=1, description="Keep the first N dimensions (re-normalised for "
                                                           "cosine models): for Matryoshka-trained models.")
    user: str | None = Field(None, description="Accepted for OpenAI compatibility; ignored.")
    input_type: Literal["query", "document"] | None = Field(
        None, description="Encode as queries or as documents (the model's prompts, if it has any); default: "
                          "as documents, like the index (the same as the model's own encode when it has none).")

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
            raise ValueError("token ids are not accepted, send texts (LangChain's OpenAIEmbeddings: "
                             "check_embedding_ctx_length=False)")
        return not_empty(value)

    @property
    def texts(self) -> list[str]:
        return as_texts(self.input)


class RerankDocument(BaseModel):
    model_config = STRICT
    text: str


class RerankRequest(BaseModel):
    """The rerank request of Infinity and Cohere (documents as strings, or as ``{"text": ...}`` objects)."""

    model_config = STRICT
    query: str = Field(description="The query the documents are scored against.")
    documents: list[str | RerankDocument] = Field(description="Texts to score (at most --max-texts).")
    top_n: int | None = Field(None, ge=1, description="Return only the best N; default: all, best first.")
    return_documents: bool = Field(False, description="Include each document's text in the results.")
    model: str | None = Field(None, description="The served model's id; optional.")

    @field_validator("documents")
    @classmethod
    def _some(cls, value: list) -> list:
        if not value:
            raise ValueError("must not be empty")
        return value

    @property
    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]
