"""Subword targets from sentencepiece, trained on a manifest's (normalised) text.

The trained model is a serialized ``ModelProto``; :meth:`BpeTokenizer.to_dict` stores it base64-encoded, so
a checkpoint carries the whole tokenizer and no side file is ever needed. Id layout: 0 = ``<blank>``
(sentencepiece's pad piece, which sentencepiece never emits), 1 = ``<unk>`` (never emitted by
:meth:`BpeTokenizer.encode`: text not covered raises instead), then the learned pieces (``▁`` starts a word).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterable
from typing import Any, Literal

import sentencepiece as spm

from asr.text.base import BLANK_ID, BLANK_TOKEN, FORMAT_VERSION, OnOOV, Tokenizer, check_dict
from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

__all__ = ["BpeTokenizer", "train_bpe"]

UNK_ID = 1
_WORD_START = "\u2581"  # sentencepiece's "▁"


class BpeTokenizer(Tokenizer):
    """A trained sentencepiece model behind the :class:`Tokenizer` interface. Build with :func:`train_bpe`."""

    kind = "bpe"

    def __init__(self, *, model_proto: bytes) -> None:
        """``model_proto``: a serialized sentencepiece model, pad id 0 and unk id 1 (as train_bpe makes)."""
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"not a valid sentencepiece model proto ({len(model_proto)} bytes): {err}"
            ) from err
        if self._sp.pad_id() != BLANK_ID or self._sp.unk_id() != UNK_ID:
            raise ValueError(
                f"sentencepiece model must have pad_id={BLANK_ID} (the CTC blank) and unk_id={UNK_ID}; "
                f"got pad_id={self._sp.pad_id()}, unk_id={self._sp.unk_id()} (train it with train_bpe)"
            )
        self._proto = bytes(model_proto)
        self._tokens = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        self._tokens[BLANK_ID] = BLANK_TOKEN
        # Characters the model can spell: those with a piece of their own (all training characters, since
        # train_bpe asks for character coverage 1.0).
        self._alphabet = frozenset(p for p in self._tokens[UNK_ID + 1 :] if len(p) == 1 and p != _WORD_START)

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    @property
    def model_proto(self) -> bytes:
        return self._proto

    def oov(self, text: str) -> list[str]:
        return sorted({c for c in normalize_text(text) if c != " " and c not in self._alphabet})

    def encode(self, text: str, *, on_oov: OnOOV = "raise") -> list[int]:
        norm = normalize_text(text)
        self._handle_oov(sorted({c for c in norm if c != " " and c not in self._alphabet}), text, on_oov)
        kept = " ".join("".join(c for c in norm if c == " " or c in self._alphabet).split())
        ids = self._sp.encode(kept) if kept else []
        assert UNK_ID not in ids, f"sentencepiece produced <unk> for covered text {kept!r}"
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Pieces joined into words; blank and ``<unk>`` ids are ignored."""
        kept = [i for i in self._check_ids(ids) if i not in (BLANK_ID, UNK_ID)]
        return " ".join(self._sp.decode(kept).split())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": FORMAT_VERSION,
            "model_proto_b64": base64.b64encode(self._proto).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BpeTokenizer:
        check_dict(d, cls.kind, ["model_proto_b64"])
        try:
            proto = base64.b64decode(d["model_proto_b64"], validate=True)
        except (ValueError, TypeError) as err:
            raise ValueError(f"bpe tokenizer dict: model_proto_b64 is not valid base64: {err}") from err
        return cls(model_proto=proto)


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    model_type: Literal["bpe", "unigram"] = "bpe",
) -> BpeTokenizer:
    """Train a sentencepiece model on ``normalize_text`` of each text and wrap it.

    ``vocab_size`` counts every output class (blank and ``<unk>`` included). Every character of the training
    text gets a piece (character coverage 1.0). Training is single-threaded on the texts in the given order,
    so the same texts give the same model. Raises ValueError when there is no text or ``vocab_size`` does not
    fit the text (sentencepiece's message says the largest size that does).
    """
    if model_type not in ("bpe", "unigram"):
        raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}")
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (blank, unk and one piece), got {vocab_size}")
    lines = [t for t in (normalize_text(x) for x in texts) if t]
    if not lines:
        raise ValueError("train_bpe: no non-empty text to train on")
    alphabet = sorted({c for line in lines for c in line if c != " "})
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=writer,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=BLANK_ID,
            pad_piece=BLANK_TOKEN,
            unk_id=UNK_ID,
            bos_id=-1,
            eos_id=-1,
            character_coverage=1.0,
            normalization_rule_name="identity",  # our own normalize_text already ran
            input_sentence_size=0,
            shuffle_input_sentence=False,
            # sentencepiece skips longer lines without a word: make every line fit.
            max_sentence_length=max(4192, max(len(line.encode("utf-8")) for line in lines) + 1),
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise ValueError(
            f"sentencepiece could not train a {model_type} model of vocab_size={vocab_size} on {len(lines)} "
            f"texts with {len(alphabet)} distinct characters: {err}"
        ) from err
    tok = BpeTokenizer(model_proto=writer.getvalue())
    logger.info("trained %s tokenizer: %d pieces from %d texts", model_type, tok.vocab_size, len(lines))
    return tok
