"""An LM folder: the n-gram LM, its lexicon and the decoder settings tuned for them, described by ``lm.json``.

``asr lm build --out DIR`` writes one; the bundled model ships one beside its weights (``asr/assets/model/``);
``--lm DIR`` on any command uses one. ``lm.json``::

    {"format": 1, "lm": "lm.arpa.gz", "lexicon": "lexicon.txt.gz", "units": "words",
     "order": 3, "ngram_counts": [40000, ...], "lexicon_words": 40000,
     "tokenizer": {"kind": "char", "tokens": ["<blank>", "|", ...]},
     "decoder": {"lm_weight": 1.0, "word_score": -1.0, ...},     # defaults for LMDecoderConfig (tuned)
     "build": {...}}                                              # how it was made (command, sources, exclusions)

Reading checks that the files are there and that the LM's order and n-gram counts and the lexicon's size are the
ones recorded (a file replaced by another one is an error naming it, before any audio is decoded).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from asr.decoding.lm import LMError, read_lm_info
from asr.decoding.lm_decoder import LMDecoder, LMDecoderConfig
from asr.text.base import Tokenizer

__all__ = ["LM_FOLDER_FORMAT", "LMFolder", "folder_decoder", "folder_tokens", "read_lm_folder", "write_lm_json"]

LM_FOLDER_FORMAT = 1
LM_JSON = "lm.json"
_TUNABLE = {f.name for f in dataclasses.fields(LMDecoderConfig)} - {"lm", "lexicon"}


@dataclasses.dataclass(frozen=True)
class LMFolder:
    path: Path
    config: LMDecoderConfig  # files and the recorded (tuned) search options
    tokens: tuple[str, ...]  # the tokenizer the lexicon (or token LM) was made for
    meta: dict[str, Any]  # the whole lm.json

    def fits(self, tokenizer: Tokenizer) -> bool:
        """Whether this folder was made for a tokenizer with exactly these tokens."""
        return tuple(tokenizer.tokens) == self.tokens


def write_lm_json(folder: str | os.PathLike, meta: dict[str, Any]) -> Path:
    path = Path(folder) / LM_JSON
    tmp = path.with_name(LM_JSON + ".tmp")
    tmp.write_text(json.dumps({"format": LM_FOLDER_FORMAT, **meta}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_lm_folder(folder: str | os.PathLike, *, check_files: bool = True) -> LMFolder:
    """Read ``lm.json`` of an LM folder and check its files (LMError naming the file on any mismatch)."""
    folder = Path(folder)
    path = folder / LM_JSON
    if not path.is_file():
        raise LMError(f"{folder} is not an LM folder: it has no {LM_JSON} (made by 'asr lm build --out DIR')")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LMError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != LM_FOLDER_FORMAT:
        raise LMError(f"{path}: expected an object with \"format\": {LM_FOLDER_FORMAT}")
    for key in ("lm", "tokenizer", "decoder"):
        if key not in meta:
            raise LMError(f"{path}: missing key {key!r}")
    decoder = meta["decoder"]
    unknown = sorted(set(decoder) - _TUNABLE) if isinstance(decoder, dict) else ["(not an object)"]
    if unknown:
        raise LMError(f"{path}: unknown decoder settings {unknown}; known: {sorted(_TUNABLE)}")
    lm = str(folder / meta["lm"]) if meta["lm"] else None
    lexicon = str(folder / meta["lexicon"]) if meta.get("lexicon") else None
    try:
        config = LMDecoderConfig(lm=lm, lexicon=lexicon, **decoder)
    except (TypeError, ValueError) as exc:
        raise LMError(f"{path}: bad decoder settings {decoder}: {exc}") from exc
    tokens = tuple(meta["tokenizer"].get("tokens", ())) if isinstance(meta["tokenizer"], dict) else ()
    if not tokens:
        raise LMError(f"{path}: tokenizer.tokens is missing or empty")
    folder_lm = LMFolder(folder, config, tokens, meta)
    if check_files:
        _check_files(folder_lm)
    return folder_lm


def folder_tokens(folder: str | os.PathLike) -> tuple[str, ...] | None:
    """The tokens the LM folder at ``folder`` was made for, or None when no lm.json is there (its files unchecked)."""
    return read_lm_folder(folder, check_files=False).tokens if (Path(folder) / LM_JSON).is_file() else None


def _check_files(folder: LMFolder) -> None:
    meta, config = folder.meta, folder.config
    if config.lm is not None:
        info = read_lm_info(config.lm)
        if "order" in meta and info.order != meta["order"]:
            raise LMError(f"{config.lm}: an LM of order {info.order}, but {folder.path / LM_JSON} says {meta['order']}")
        if "ngram_counts" in meta and list(info.counts) != list(meta["ngram_counts"]):
            raise LMError(
                f"{config.lm}: n-gram counts {list(info.counts)} differ from the {meta['ngram_counts']} recorded in "
                f"{folder.path / LM_JSON} (the file was replaced?)"
            )
    if config.lexicon is not None and not Path(config.lexicon).is_file():
        raise LMError(f"lexicon {config.lexicon} named in {folder.path / LM_JSON} does not exist")


def folder_decoder(folder: LMFolder, tokenizer: Tokenizer, **options) -> LMDecoder:
    """The LMDecoder of an LM folder for ``tokenizer`` (its recorded options, then ``options``); errors name the
    folder when it was made for other tokens, or when its lexicon's size is not the one recorded."""
    if not folder.fits(tokenizer):
        raise LMError(
            f"{folder.path / LM_JSON}: made for a {folder.meta['tokenizer'].get('kind')} tokenizer with tokens "
            f"{' '.join(folder.tokens[1:])!r}; this model's are {' '.join(tokenizer.tokens[1:])!r}"
        )
    config = dataclasses.replace(folder.config, **options)
    decoder = LMDecoder(config, tokenizer)
    expected = folder.meta.get("lexicon_words")
    if decoder.lexicon is not None and expected is not None and len(decoder.lexicon) != expected:
        raise LMError(
            f"{config.lexicon}: {len(decoder.lexicon)} words, but {folder.path / LM_JSON} says {expected}"
        )
    return decoder
