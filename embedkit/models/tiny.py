"""Tiny random-init ModernBERT checkpoints with a tokenizer trained on the spot.

For smoke-testing recipes, benchmarks and the test-suite without downloading anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _with_cls_sep(tok):
    """A trained ``tokenizers.Tokenizer`` as a transformers tokenizer that wraps texts in [CLS] ... [SEP]."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=8192)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A lowercase WordPiece tokenizer with BERT-style [CLS] ... [SEP] post-processing."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tok.train_from_iterator(list(texts), trainer=trainer)
    return _with_cls_sep(tok)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A byte-level BPE tokenizer with [CLS] ... [SEP] post-processing, like ModernBERT's own: spaces are part
    of the tokens, so leading or trailing whitespace changes the ids (WordPiece ignores it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return _with_cls_sep(tok)


def build_tiny_modernbert(path: str | Path, texts: Iterable[str], hidden_size: int = 64,
                          num_hidden_layers: int = 3, num_attention_heads: int = 4,
                          intermediate_size: int = 96, vocab_size: int = 2000, seed: int = 0,
                          local_attention: int = 8, tokenizer: str = "wordpiece") -> Path:
    """Save a random-init ``ModernBertModel`` plus tokenizer to ``path`` and return it.

    ``local_attention`` is kept small so that tests with short texts still exercise the sliding window;
    ``tokenizer`` is ``wordpiece`` (lowercasing, whitespace-blind) or ``bpe`` (byte-level, as ModernBERT's).
    """
    import torch
    from transformers import ModernBertConfig, ModernBertModel

    path = Path(path)
    train = {"wordpiece": train_tokenizer, "bpe": train_bpe_tokenizer}[tokenizer]
    tokenizer = train(texts, vocab_size=vocab_size)
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
        max_position_embeddings=8192, local_attention=local_attention,
        global_attn_every_n_layers=3, pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        attn_implementation="sdpa")
    torch.manual_seed(seed)
    model = ModernBertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
