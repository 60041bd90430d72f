"""CTC beam search with a lexicon and an n-gram language model, full-utterance and streaming.

The search is flashlight-text's (``flashlight.lib.text.decoder``: ``LexiconDecoder``, ``LexiconFreeDecoder``, KenLM),
the same C++ decoders ``torchaudio.models.decoder.ctc_decoder`` wraps. We build them from flashlight's classes
rather than through torchaudio's factory because a recognizer runs one search per stream: the lexicon trie and the
KenLM model are built once (:class:`LMDecoder`) and shared by every stream's search, where torchaudio's factory
would rebuild the trie for each. Nothing of the search itself is written here.

Three modes, chosen by :class:`LMDecoderConfig`:

* ``lexicon+lm``: words from the lexicon, scored by a word n-gram LM (the usual setup; char and phone models);
* ``lexicon``: words from the lexicon, no LM (``lm=None``): only spellings of known words survive;
* ``lexicon-free``: any token sequence, scored by an LM over the model's tokens (``lexicon=None``; char or BPE
  models with a token-level LM, e.g. ``asr lm build --units tokens``).

Incremental decoding is exact: :meth:`LMDecoder.step` feeds frames to the search chunk by chunk, and a
full-utterance decode is the same calls over all frames at once (commits included, see below), so a stream's
transcript equals the full utterance's for any chunking (tested). That holds with an LM; without one
(``lexicon`` mode) hypotheses often tie exactly (two segmentations of the same letters, BE THE / BET HE, cost the
same) and flashlight orders tied hypotheses by the addresses of their LM states, which made that mode's transcript
change from one run to the next on the same log-probs under flashlight's ``ZeroLM`` (measured: 7 of 60 synthetic
test utterances decoded twice). So ``lexicon`` mode searches with a tie-breaking unigram LM (:func:`_tie_break_lm`):
every word costs a distinct, fixed amount under ``TIE_BREAK_SCALE`` (far below any acoustic difference), so two
different word sequences never tie exactly and the search is deterministic, chunked or not (tested).

Commits. The search keeps every frame's beam and flashlight's LM states form a tree of whole word histories (two
hypotheses with different pasts never merge), so an unbounded segment would grow without bound. Every
``commit_every`` frames (counted from the segment start: at the same frames whatever the chunking) the history is
moved out of the search (flashlight's ``prune``) into the state: all of it on which every hypothesis in the beam
agrees (exact), and at least everything older than ``history_frames`` (back to a word boundary): there the best
hypothesis's words become final, as in any streaming decoder. A hypothesis that disagrees with the best one that
far back and wins later would keep its own LM context but show the best one's older words; at 6 s of history this
is rare, and the full-utterance decode makes the same commits, so both give the same transcript.

A state (:class:`LMDecoderState`) is one stream's search: its C++ half is advanced in place, so stepping a state
consumes it; the returned state is the one to keep (reusing an old one raises). The best hypothesis at any time is
the partial result; :meth:`LMDecoder.finish` adds the LM's end-of-sentence score and gives the final one.
Hypotheses carry the words with their frames and confidences (mean token posterior), and the tokens with theirs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asr.decoding.ctc import Hypothesis, Word
from asr.decoding.lexicon import Lexicon, read_lexicon, silence_token
from asr.decoding.lm import LMError, LMInfo, load_kenlm, read_lm_info
from asr.text.base import Tokenizer

logger = logging.getLogger(__name__)

__all__ = ["DECODER_MODES", "LMDecoder", "LMDecoderConfig", "LMDecoderState"]

DECODER_MODES = ("lexicon+lm", "lexicon", "lexicon-free")
UNK_WORD = "<unk>"
TRIE_LABELS = 6  # words one flashlight trie node holds (its kTrieMaxLabel); more are dropped by it, with a print
#: Largest cost (log10) the ``lexicon`` mode's tie-breaking LM gives a word (see :func:`_tie_break_lm`).
TIE_BREAK_SCALE = 1e-6
#: Fewer lexicon words than this share found in the LM's vocabulary means the two were not made for each other.
MIN_LM_COVERAGE = 0.5


@dataclass(frozen=True)
class LMDecoderConfig:
    """The decoder's files and search options (flashlight's names in brackets)."""

    lm: str | None = None  # KenLM model: ARPA (.arpa / .arpa.gz) or KenLM binary; None: lexicon without LM
    lexicon: str | None = None  # lexicon file (asr.decoding.lexicon); None: lexicon-free (needs a token-level LM)
    beam_size: int = 32  # hypotheses kept after each frame [beamSize]
    beam_size_token: int | None = None  # tokens tried per frame, the most likely first; None: all [beamSizeToken]
    beam_threshold: float = 25.0  # drop hypotheses this far (log) below the frame's best [beamThreshold]
    lm_weight: float = 1.0  # weight of the LM's log10 probabilities against the model's log posteriors [lmWeight]
    word_score: float = 0.0  # added per word (lexicon modes), per token (lexicon-free) [wordScore]
    unk_score: float = float("-inf")  # score of a spelling outside the lexicon, as <unk>; -inf: never [unkScore]
    sil_score: float = 0.0  # added per frame of the silence token between words [silScore]
    # subtracted from the blank's log posterior in every frame before the search: a model whose posteriors are not
    # peaky (a distilled one spreads a phone over frames at 0.5-0.9) otherwise loses short words to the all-blank
    # path; word times and confidences keep the model's own posteriors
    blank_penalty: float = 0.0
    log_add: bool = False  # merge equal hypotheses by log-add (True) or max (False) [logAdd]
    commit_every: int = 50  # frames between commits of the history (see the module docstring)
    history_frames: int = 150  # frames of undecided history the search keeps at a commit (6 s at 40 ms)

    def __post_init__(self) -> None:
        if self.lm is None and self.lexicon is None:
            raise ValueError("LMDecoderConfig needs an LM, a lexicon or both (for neither use greedy or prefix beam)")
        if self.beam_size < 1 or (self.beam_size_token is not None and self.beam_size_token < 1):
            raise ValueError(f"beam sizes must be >= 1, got {self.beam_size}, {self.beam_size_token}")
        if not self.beam_threshold > 0:
            raise ValueError(f"beam_threshold must be > 0, got {self.beam_threshold}")
        for name in ("lm_weight", "word_score", "sil_score", "blank_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if self.lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {self.lm_weight}")
        if math.isnan(self.unk_score) or self.unk_score == math.inf:
            raise ValueError(f"unk_score must be a number or -inf, got {self.unk_score}")
        if self.commit_every < 1 or self.history_frames < 1:
            raise ValueError(f"commit_every and history_frames must be >= 1, got {self.commit_every}, "
                             f"{self.history_frames}")

    @property
    def mode(self) -> str:
        if self.lexicon is None:
            return "lexicon-free"
        return "lexicon" if self.lm is None else "lexicon+lm"


# -- per-stream state ----------------------------------------------------------------------------------------------


class _Search:
    """One stream's flashlight search (C++ object) and how many frames it has consumed."""

    def __init__(self, decoder) -> None:
        self.decoder = decoder
        self.frames = 0  # frames decoded; a state whose ``frame`` disagrees is stale
        self.finished = False


@dataclass(frozen=True)
class _Carry:
    """Where the walk over the search's buffer resumes after a commit."""

    prev_token: int = -1  # the token before the buffer's first frame (CTC repeat collapsing)
    pending: tuple[tuple[int, int, float], ...] = ()  # (frame, token, confidence) of a word begun but not finished
    root_is_frame: bool = False  # the buffer's root node is a real frame (after a commit) that still needs a walk


@dataclass(frozen=True)
class _Output:
    tokens: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    confidences: tuple[float, ...] = ()
    words: tuple[Word, ...] = ()

    def __add__(self, other: _Output) -> _Output:
        return _Output(
            self.tokens + other.tokens,
            self.frames + other.frames,
            self.confidences + other.confidences,
            self.words + other.words,
        )


@dataclass(frozen=True)
class LMDecoderState:
    """One stream's LM search (see the module docstring: stepping consumes a state)."""

    search: _Search
    frame: int  # absolute index of the next frame
    start: int  # absolute frame where this search (segment) began
    base: int  # absolute frame of the search buffer's index 1 (index 0 is its root)
    committed: _Output = _Output()  # the history moved out of the search
    carry: _Carry = _Carry()
    log_probs: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # [n, V] frames from lp_start on
    lp_start: int = 0  # absolute frame of log_probs[0]

    @property
    def finished(self) -> bool:
        return self.search.finished


# -- the decoder ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resources:
    """What every stream's search shares: built once per files + tokenizer."""

    lm: object  # flashlight LM (KenLM, or the tie-breaking LM of lexicon mode)
    trie: object | None  # flashlight Trie (lexicon modes)
    word_entries: tuple[str, ...]  # word index -> word (lexicon modes)
    unk: int  # word index of <unk>
    lexicon: Lexicon | None
    lm_info: LMInfo | None


class LMDecoder:
    """Lexicon / LM beam search for one tokenizer; loads and checks the files on construction (before any audio)."""

    def __init__(self, config: LMDecoderConfig, tokenizer: Tokenizer, *, _resources: _Resources | None = None) -> None:
        self.config = config
        self.tokenizer = tokenizer
        tokens = tokenizer.tokens
        self.blank = tokenizer.blank_id
        self.sil = tokens.index(silence_token(tokenizer))
        self.vocab_size = len(tokens)
        self._res = _resources if _resources is not None else _load(config, tokenizer)
        self._options = self._make_options()

    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def lexicon(self) -> Lexicon | None:
        return self._res.lexicon

    @property
    def lm_info(self) -> LMInfo | None:
        return self._res.lm_info

    def with_options(self, **changes) -> LMDecoder:
        """The same files with other search options (lm_weight, word_score, beam_size, ...): shares the LM and the
        trie, so a grid search loads them once."""
        config = dataclasses.replace(self.config, **changes)
        if (config.lm, config.lexicon) != (self.config.lm, self.config.lexicon):
            raise ValueError("with_options changes search options only; build a new LMDecoder for other files")
        return LMDecoder(config, self.tokenizer, _resources=self._res)

    def _make_options(self):
        from flashlight.lib.text import decoder as fl

        c = self.config
        common = dict(
            beam_size=c.beam_size,
            beam_size_token=min(c.beam_size_token or self.vocab_size, self.vocab_size),
            beam_threshold=c.beam_threshold,
            lm_weight=1.0 if c.mode == "lexicon" else c.lm_weight,  # lexicon: the tie-break's scale is fixed
            sil_score=c.sil_score,
            log_add=c.log_add,
            criterion_type=fl.CriterionType.CTC,
        )
        if c.mode == "lexicon-free":
            return fl.LexiconFreeDecoderOptions(**common)
        return fl.LexiconDecoderOptions(word_score=c.word_score, unk_score=c.unk_score, **common)

    # -- states --------------------------------------------------------------------------------------------------
    def init_state(self, frame: int = 0) -> LMDecoderState:
        """A new search starting at absolute frame ``frame`` (a stream's segment start)."""
        from flashlight.lib.text import decoder as fl

        if self.config.mode == "lexicon-free":
            search = fl.LexiconFreeDecoder(self._options, self._res.lm, self.sil, self.blank, [])
        else:
            search = fl.LexiconDecoder(
                self._options, self._res.trie, self._res.lm, self.sil, self.blank, self._res.unk, [], False
            )
        search.decode_begin()
        return LMDecoderState(
            search=_Search(search),
            frame=frame,
            start=frame,
            base=frame,
            carry=_Carry(prev_token=self.sil),
            log_probs=torch.zeros(0, self.vocab_size),
            lp_start=frame,
        )

    def _check_live(self, state: LMDecoderState) -> None:
        if state.search.finished:
            raise ValueError("this LM decoder state is finished (finish() was called); start a new one")
        if state.search.frames != state.frame - state.start:
            raise ValueError("stale LM decoder state: it was already stepped; use the state step() returned")

    def step(self, log_probs: torch.Tensor, state: LMDecoderState) -> LMDecoderState:
        """Consume frames ``log_probs`` [T, V]; returns the new state (``state`` is consumed)."""
        if log_probs.dim() != 2 or log_probs.shape[1] != self.vocab_size:
            raise ValueError(f"log_probs must be [T, {self.vocab_size}], got {tuple(log_probs.shape)}")
        self._check_live(state)
        lp = log_probs.detach().to("cpu", torch.float32).contiguous()
        scored = lp  # what the search sees
        if self.config.blank_penalty:
            scored = lp.clone()
            scored[:, self.blank] -= self.config.blank_penalty
        every = self.config.commit_every
        done = 0
        while done < lp.shape[0]:
            to_boundary = every - (state.frame - state.start) % every
            piece = lp[done : done + to_boundary]
            seen = scored[done : done + to_boundary]
            state.search.decoder.decode_step(seen.data_ptr(), seen.shape[0], seen.shape[1])
            state.search.frames += piece.shape[0]
            state = dataclasses.replace(
                state, frame=state.frame + piece.shape[0], log_probs=torch.cat([state.log_probs, piece])
            )
            done += piece.shape[0]
            if (state.frame - state.start) % every == 0:
                state = self._commit(state)
        return state

    def _commit(self, state: LMDecoderState) -> LMDecoderState:
        """Move the agreed or old history out of the search (see the module docstring)."""
        search = state.search.decoder
        results = search.get_all_final_hypothesis()  # every hypothesis in the beam, before decode_end
        n = state.frame - state.base  # frames in the buffer: indices 1..n (0 is the root)
        if not results:
            return state
        best = max(range(len(results)), key=lambda i: results[i].score)
        paths = [(r.tokens, r.words) for r in results]  # (pybind copies the lists on each attribute access)
        paths[0], paths[best] = paths[best], paths[0]
        agreed = 0  # indices 0..agreed are the same in every hypothesis
        first_tokens, first_words = paths[0]
        while agreed < n and all(
            t[agreed + 1] == first_tokens[agreed + 1] and w[agreed + 1] == first_words[agreed + 1] for t, w in paths[1:]
        ):
            agreed += 1
        keep = min(n - agreed, self.config.history_frames)  # frames left in the search (prune may keep more)
        if keep >= n:
            return state
        search.prune(keep)
        kept = len(search.get_all_final_hypothesis()[0].tokens) - 1  # frames left in the buffer after prune
        cut = n - kept  # old index that became the new root
        if cut < 1:
            return state
        # Old indices (1 or 0)..cut-1 of the best path leave the search; index ``cut`` is the new root, walked later.
        out, carry = self._walk(paths[0], state, stop=cut - 1)
        return dataclasses.replace(
            state,
            base=state.base + cut,
            committed=state.committed + out,
            carry=dataclasses.replace(carry, root_is_frame=True),
            log_probs=state.log_probs[state.base + cut - 1 - state.lp_start :],
            lp_start=state.base + cut - 1,
        )

    def _walk(self, path, state: LMDecoderState, *, stop: int) -> tuple[_Output, _Carry]:
        """Tokens and words of buffer indices up to ``stop`` of a path (a flashlight result's per-frame token and
        word lists), continuing ``state.carry``."""
        lexical = self.config.mode != "lexicon-free"
        entries = self._res.word_entries
        carry = state.carry
        prev, pending = carry.prev_token, list(carry.pending)
        tokens, frames, confs, words = [], [], [], []
        lp, lp_start = state.log_probs, state.lp_start
        path_tokens, path_words = path
        for i in range(0 if carry.root_is_frame else 1, stop + 1):
            tok, word = path_tokens[i], path_words[i]
            frame = state.base + i - 1
            if tok != self.blank and tok != prev:
                conf = math.exp(float(lp[frame - lp_start, tok]))
                tokens.append(tok)
                frames.append(frame)
                confs.append(conf)
                if tok != self.sil:
                    pending.append((frame, tok, conf))
            prev = tok
            if lexical and word >= 0:
                if pending:
                    start, mean = pending[0][0], sum(p[2] for p in pending) / len(pending)
                else:
                    start, mean = frame, math.exp(float(lp[frame - lp_start, tok]))
                words.append(Word(entries[word], start, frame + 1, mean))
                pending = []
        out = _Output(tuple(tokens), tuple(frames), tuple(confs), tuple(words))
        return out, _Carry(prev_token=prev, pending=tuple(pending))

    def _hypothesis(self, result, state: LMDecoderState, n: int) -> Hypothesis:
        path = None if result is None else (result.tokens, result.words)
        if path is None or not path[0]:
            out = state.committed
            score = 0.0
        else:
            live, _ = self._walk(path, state, stop=n)
            out = state.committed + live
            score = float(result.score)
        words = out.words if self.config.mode != "lexicon-free" else None
        return Hypothesis(out.tokens, out.frames, out.confidences, score, words)

    def best(self, state: LMDecoderState) -> Hypothesis:
        """The current best hypothesis (a partial result: words finished so far, no end-of-sentence score)."""
        self._check_live(state)
        results = state.search.decoder.get_all_final_hypothesis() if state.frame > state.start else []
        # (get_best_hypothesis stops at the best path's last finished word: the tokens after it would be missing)
        result = max(results, key=lambda r: r.score) if results else None
        return self._hypothesis(result, state, state.frame - state.base)

    def finish(self, state: LMDecoderState) -> Hypothesis:
        """End the search (the LM's end-of-sentence score) and return the final best hypothesis."""
        self._check_live(state)
        search = state.search
        search.decoder.decode_end()
        search.finished = True
        results = search.decoder.get_all_final_hypothesis() if state.frame > state.start else []
        return self._hypothesis(results[0] if results else None, state, state.frame - state.base)

    def decode(self, log_probs: torch.Tensor) -> Hypothesis:
        """Full-utterance decoding of ``log_probs`` [T, V] (the same calls as a stream fed all frames at once)."""
        return self.finish(self.step(log_probs, self.init_state()))


# -- loading -------------------------------------------------------------------------------------------------------


def _word_dict(words: list[str]):
    from flashlight.lib.text.dictionary import Dictionary

    d = Dictionary()
    for w in words:
        d.add_entry(w)
    if UNK_WORD not in words:
        d.add_entry(UNK_WORD)
    d.set_default_index(d.get_index(UNK_WORD))
    return d


def _check_vocabulary(config: LMDecoderConfig, info: LMInfo, tokenizer: Tokenizer, words: list[str]) -> None:
    """The LM must speak the lexicon's words (or, lexicon-free, be made of the model's tokens)."""
    if info.vocab is None:
        return  # a KenLM binary: its vocabulary is only known to KenLM
    if config.mode == "lexicon-free":
        vocab = [w for w in info.vocab if w not in ("<s>", "</s>", UNK_WORD, "<UNK>")]
        tokens = set(tokenizer.tokens)
        found = sum(w in tokens for w in vocab)
        if found < MIN_LM_COVERAGE * len(vocab):
            raise LMError(
                f"{info.path}: only {found} of the {len(vocab)} words of this LM are {tokenizer.kind} tokens of the "
                f"model (e.g. {sorted(w for w in vocab if w not in tokens)[:8]}): lexicon-free decoding needs an LM "
                "over the model's tokens (asr lm build --units tokens); pass --lexicon for a word LM"
            )
        return
    wanted = [w for w in words if w != UNK_WORD]
    found = sum(w in info.vocab for w in wanted)
    if found < MIN_LM_COVERAGE * len(wanted):
        missing = [w for w in wanted if w not in info.vocab][:8]
        raise LMError(
            f"{info.path}: only {found} of {len(wanted)} of the words of lexicon {config.lexicon} are in this LM's "
            f"vocabulary of {len(info.vocab)} (missing e.g. {missing}): the LM and the lexicon were not made for each "
            "other (case? another vocabulary?)"
        )
    if found < len(wanted):
        logger.info(
            "%s: %d of the %d words of lexicon %s are not in the LM (scored as <unk>)",
            info.path, len(wanted) - found, len(wanted), config.lexicon,
        )


def _tie_break_score(word: str) -> float:
    """A fixed pseudo-random log10 score in (-TIE_BREAK_SCALE, 0) for a word: sums over different word sequences
    do not coincide in practice. From the word's spelling, not its index, so it does not depend on the lexicon's
    order."""
    h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return -TIE_BREAK_SCALE * (h + 1) / 2.0**64


def _tie_break_lm(words: list[str], word_dict):
    """The ``lexicon`` mode's LM (see the module docstring): a unigram KenLM without knowledge, only a tiny distinct
    cost per word, written to a temporary ARPA file and loaded (KenLM keeps it in memory). Its states form
    flashlight's usual tree of word histories, as under ``ZeroLM``, and it scores in C++ (a Python LM made the
    search 7x slower)."""
    vocab = sorted((set(words) | {UNK_WORD}) - {"<s>", "</s>"})
    # KenLM loads bigram models and up: one bigram (<s> </s>) that no search uses makes this one
    lines = ["\\data\\", f"ngram 1={len(vocab) + 2}", "ngram 2=1", "", "\\1-grams:", "-99\t<s>\t0", "0\t</s>"]
    lines += [f"{_tie_break_score(w):.9e}\t{w}" for w in vocab]
    lines += ["", "\\2-grams:", "0\t<s> </s>", "", "\\end\\", ""]
    with tempfile.TemporaryDirectory(prefix="asr-tie-break-") as tmp:
        arpa = Path(tmp) / "tie_break.arpa"
        arpa.write_text("\n".join(lines), encoding="utf-8")
        return load_kenlm(arpa, word_dict)


def _load(config: LMDecoderConfig, tokenizer: Tokenizer) -> _Resources:
    from flashlight.lib.text import decoder as fl

    lexicon = read_lexicon(config.lexicon, tokenizer) if config.lexicon is not None else None
    if lexicon is not None:
        words = lexicon.words
    else:  # lexicon-free: the LM's "words" are the model's tokens
        words = list(tokenizer.tokens)
    word_dict = _word_dict(words)
    info = None
    if config.lm is not None:
        info = read_lm_info(config.lm)
        _check_vocabulary(config, info, tokenizer, words)
        lm = load_kenlm(Path(config.lm), word_dict)
    elif lexicon is not None:
        lm = _tie_break_lm(words, word_dict)
    else:  # unreachable: the config refuses neither an LM nor a lexicon
        raise ValueError("LMDecoderConfig needs an LM, a lexicon or both")
    entries = tuple(word_dict.get_entry(i) for i in range(word_dict.index_size()))
    unk = word_dict.get_index(UNK_WORD)
    trie = None
    if lexicon is not None:
        table = {t: i for i, t in enumerate(tokenizer.tokens)}
        trie = fl.Trie(len(table), table[silence_token(tokenizer)])
        start = lm.start(False)
        by_spelling: dict[tuple[str, ...], list[tuple[float, int]]] = {}
        for word, spellings in lexicon.entries.items():
            idx = word_dict.get_index(word)
            score = lm.score(start, idx)[1]  # unigram score: smeared over the trie to guide the search
            for spelling in spellings:
                by_spelling.setdefault(spelling, []).append((score, idx))
        dropped = []
        for spelling, words_here in by_spelling.items():
            # A trie node holds at most TRIE_LABELS words (flashlight drops the rest with a message on stderr):
            # homophones keep the ones the LM finds most likely, not the first in the file.
            words_here.sort(key=lambda t: (-t[0], t[1]))
            for score, idx in words_here[:TRIE_LABELS]:
                trie.insert([table[t] for t in spelling], idx, score)
            dropped += [entries[idx] for _, idx in words_here[TRIE_LABELS:]]
        if dropped:
            logger.info(
                "%d homophones left out of the lexicon trie (at most %d words per spelling, the most likely kept), "
                "e.g. %s", len(dropped), TRIE_LABELS, dropped[:8],
            )  # fmt: skip
        trie.smear(fl.SmearingMode.MAX)
    logger.info(
        "LM decoder (%s): %s%s",
        config.mode,
        f"lexicon {config.lexicon} ({len(lexicon)} words)" if lexicon is not None else "no lexicon",
        f", LM {config.lm} (order {info.order}, {info.counts})" if info is not None else ", no LM",
    )
    return _Resources(lm=lm, trie=trie, word_entries=entries, unk=unk, lexicon=lexicon, lm_info=info)
