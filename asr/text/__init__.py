"""Text: the one normalisation and the tokenizers (characters, sentencepiece BPE, CMUdict phones).

    from asr.text import build_tokenizer, normalize_text, tokenizer_from_dict
    tok = build_tokenizer("char")                        # or "bpe" (texts=..., vocab_size=...), "phone"
    ids = tok.encode("Don't stop!")                      # normalised inside; blank id 0 never emitted
    tok.decode(ids)                                      # "DON'T STOP"
    tok2 = tokenizer_from_dict(tok.to_dict())            # what the checkpoint stores (JSON types only)
"""

from asr.text.base import BLANK_ID, BLANK_TOKEN, OOVError, Tokenizer
from asr.text.bpe import BpeTokenizer, train_bpe
from asr.text.chars import CharTokenizer
from asr.text.normalize import normalize_text
from asr.text.phones import PHONES, PhoneTokenizer, cmudict_lexicon
from asr.text.tokenizers import TOKENIZER_KINDS, build_tokenizer, tokenizer_from_dict

__all__ = [
    "BLANK_ID",
    "BLANK_TOKEN",
    "PHONES",
    "TOKENIZER_KINDS",
    "BpeTokenizer",
    "CharTokenizer",
    "OOVError",
    "PhoneTokenizer",
    "Tokenizer",
    "build_tokenizer",
    "cmudict_lexicon",
    "normalize_text",
    "tokenizer_from_dict",
    "train_bpe",
]
