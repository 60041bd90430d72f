"""The streaming recognizer: one model on one device, any number of streams, one batched step for all.

    recognizer = Recognizer(bundle)                 # CUDA when present, else CPU
    stream = recognizer.create_stream()
    stream.accept_waveform(samples, sample_rate)    # any chunk size, any rate (resampled), int16 or float
    recognizer.decode([stream, ...])                # encoder steps for every stream with enough new audio
    stream.result                                   # partial text, finals with times, tokens, confidences

Each stream's state is a :class:`StreamState` (front-end leftovers, normalised frames not yet consumed, the
encoder state with its per-layer attention (S, z) in fp32 and convolution caches, the decoder state and
endpoint bookkeeping). Work per chunk is constant: nothing earlier is ever re-attended. For any chunking the
encoder sees exactly the frames of the full-utterance front end, so the logits equal the causal forward's.

The model steps through :class:`asr.model.PackedStep` (its weights laid out once for inference; the same
numbers as ``CTCModel.step``); ``RecognizerConfig(step=...)`` chooses how: "packed" (PackedStep with its C
kernels on the CPU), "packed_by_op" (the same, but every block op by op, not in one call: for measurements),
"packed_torch" (PyTorch ops only) or "module" (``CTCModel.step``, the plain form).
Streams stepped together stay one batch between steps (:class:`asr.streaming.batch.StreamBatch`): each
stream's encoder state is a row of the batch state until its ``state`` is read, and the same batch stepped
again continues (and updates in place) that batch state instead of splitting and re-stacking every stream's.

Streams are released as soon as they can be: the recognizer keeps weak references only (a stream the caller
drops without :meth:`Recognizer.close_stream` is freed with its state), and a stream whose input is finished
and fully decoded leaves ``Recognizer.streams`` and drops its encoder state at once (its result stays readable).
Streams the caller still holds should be closed with ``close_stream`` when no longer wanted.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from asr.audio import validate_waveform
from asr.decoding import BeamState, GreedyState, Hypothesis, beam_step, greedy_advance
from asr.decoding.lm_decoder import LMDecoder, LMDecoderState
from asr.features import FbankState, StreamingFbank
from asr.model.encoder import EncoderState
from asr.model.inference import PackedStep
from asr.pipeline import AsrModel, resolve_device
from asr.streaming.batch import StreamBatch
from asr.streaming.endpoint import EndpointConfig, detect_endpoint

logger = logging.getLogger(__name__)

#: RecognizerConfig.step: how the model steps -> PackedStep's kernel and whether a block may run in one call (None:
#: the module step)
_STEP_KERNELS = {"packed": ("auto", True), "packed_by_op": ("auto", False), "packed_torch": ("torch", True),
                 "module": None}  # fmt: skip
STEP_FORMS = tuple(_STEP_KERNELS)

#: Largest chunk accepted in one call (seconds): bigger arrays are almost always a caller bug.
MAX_CHUNK_SECONDS = 600.0


@dataclass(frozen=True)
class TimedWord:
    """A recognised word (lexicon decoders) with its place in the stream."""

    text: str
    start: float  # seconds from the start of the stream: its first token's first frame
    end: float  # seconds: the frame after its last token's first frame
    confidence: float  # mean posterior of its tokens


@dataclass(frozen=True)
class Segment:
    """A final result: one endpointed stretch of speech."""

    text: str
    start: float  # seconds from the start of the stream
    end: float
    tokens: tuple[str, ...]
    token_times: tuple[float, ...]  # seconds, first frame of each token
    confidences: tuple[float, ...]
    endpoint: str  # the rule that ended it, or "input_finished"
    words: tuple[TimedWord, ...] = ()  # with a lexicon decoder (RecognizerConfig / Recognizer(lm=...)); else empty


@dataclass(frozen=True)
class StreamResult:
    partial: str  # the current segment's text so far (may still change)
    finals: tuple[Segment, ...]  # finished segments, in order
    partial_tokens: tuple[str, ...] = ()
    partial_times: tuple[float, ...] = ()
    partial_confidences: tuple[float, ...] = ()
    partial_words: tuple[TimedWord, ...] = ()  # lexicon decoders: the partial's words with times

    @property
    def text(self) -> str:
        """Everything recognised so far: finals then the partial, space-joined."""
        return " ".join(t for t in [*(s.text for s in self.finals), self.partial] if t)


class StreamState(NamedTuple):
    """Everything one stream carries between steps (explicit, typed; replaced, never mutated)."""

    fbank: FbankState  # front-end leftover samples (CPU)
    feats: torch.Tensor  # [P, n_mels] normalised frames not yet consumed by the encoder
    encoder: EncoderState  # batch size 1: subsampling cache, per-layer attention (S, z) and conv caches
    decoder: GreedyState | BeamState | LMDecoderState  # CTC decoder state of the current segment (absolute frames);
    #   an LMDecoderState is this stream's own LM search (stepping it consumes it: the new one replaces it here)
    segment_start: int  # model frame where the current segment began
    trailing_blanks: int  # model frames since the last frame whose best label was not the blank


class StreamProgress(NamedTuple):
    """A stream's state but its encoder state: what the recognizer advances every step (the fields as in
    StreamState)."""

    fbank: FbankState
    feats: torch.Tensor
    decoder: GreedyState | BeamState | LMDecoderState
    segment_start: int
    trailing_blanks: int


@dataclass(frozen=True)
class RecognizerConfig:
    chunk_frames: int = 16  # feature frames per encoder step (a multiple of the model's subsampling): 16 = 160 ms
    beam: int = 1  # 1: greedy CTC; > 1: prefix beam search of this width
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    keep_log_probs: bool = False  # keep every step's log-probs on the stream (tests, diagnostics; grows!)
    step: str = "packed"  # how the model steps (same results up to float rounding): "packed" (asr.model.PackedStep,
    #   weights laid out for inference, its C kernels on the CPU in float32; PyTorch ops elsewhere or, with a
    #   warning, where they cannot be compiled), "packed_by_op" (the same, every block op by op: the one-call
    #   blocks' gain measured), "packed_torch" (PackedStep on PyTorch ops only) or "module"
    #   (CTCModel.step: through the modules, the plain reference form)

    def __post_init__(self) -> None:
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be a positive multiple of the subsampling, got {self.chunk_frames}")
        if self.beam < 1:
            raise ValueError(f"beam must be >= 1, got {self.beam}")
        if self.step not in STEP_FORMS:
            raise ValueError(f"step must be one of {STEP_FORMS}, got {self.step!r}")


class Stream:
    """One audio stream. Create with :meth:`Recognizer.create_stream`; feed with :meth:`accept_waveform`.

    Its state is its recognizer's to advance: the methods under "for the recognizer" are how it does so."""

    def __init__(self, recognizer: Recognizer, stream_id: int, state: StreamState) -> None:
        self._recognizer = recognizer
        self.id = stream_id
        self._progress = StreamProgress(
            state.fbank, state.feats, state.decoder, state.segment_start, state.trailing_blanks
        )
        # The encoder state: the stream's own; or, after a batch step, a row of the batch's state until someone
        # reads ``state`` (then it becomes this stream's own views): the next step of the same batch, in the
        # same order, continues the batch state as is instead of splitting and re-stacking every stream's
        # state; None once the stream is done or closed (freed).
        self._encoder: EncoderState | tuple[StreamBatch, int] | None = state.encoder
        self.finals: list[Segment] = []
        self._queued: list[torch.Tensor] = []  # 16 kHz samples accepted but not yet featurised
        self._resampler = None
        self._input_rate: int | None = None
        self.finished = False
        self.closed = False
        self.samples_received = 0  # at the model's rate
        self.audio_samples = 0  # the same and the resampler's last output: the audio's length (not the padding)
        self.log_probs: list[torch.Tensor] = []  # [n, V] per step, only with RecognizerConfig.keep_log_probs

    @property
    def recognizer(self) -> Recognizer:
        """The recognizer that made this stream (and the only one that steps it)."""
        return self._recognizer

    @property
    def state(self) -> StreamState:
        """Everything this stream carries between steps (explicit, typed; replaced, never mutated).
        ValueError once the stream is done or closed: its encoder state is freed then (its result stays)."""
        encoder = self.encoder_state()
        p = self._progress
        return StreamState(p.fbank, p.feats, encoder, p.decoder, p.segment_start, p.trailing_blanks)

    @state.setter
    def state(self, value: StreamState) -> None:
        if not isinstance(value, StreamState) or not isinstance(value.encoder, EncoderState):
            raise ValueError(f"a stream's state is a StreamState with an EncoderState, got {type(value).__name__}")
        self._progress = StreamProgress(
            value.fbank, value.feats, value.decoder, value.segment_start, value.trailing_blanks
        )
        self._encoder = value.encoder

    # -- input ------------------------------------------------------------------------------------------
    def accept_waveform(self, samples, sample_rate: int, *, channels_first: bool = False) -> None:
        """Queue a chunk. Validates first: on any error nothing changes and the text so far is kept."""
        if self.closed:
            raise ValueError(f"stream {self.id} is closed")
        if self.finished:
            raise ValueError(f"stream {self.id}: input_finished() was called; create a new stream")
        x = validate_waveform(samples, sample_rate, channels_first=channels_first, name=f"stream {self.id} chunk")
        if self._input_rate is not None and sample_rate != self._input_rate:
            raise ValueError(
                f"stream {self.id}: sample rate changed from {self._input_rate} Hz to {sample_rate} Hz mid-stream"
            )
        if x.numel() > MAX_CHUNK_SECONDS * int(sample_rate):
            raise ValueError(
                f"stream {self.id}: chunk of {x.numel()} samples ({x.numel() / sample_rate:.0f} s) exceeds "
                f"{MAX_CHUNK_SECONDS:.0f} s; feed long audio in pieces"
            )
        target = self._recognizer.sample_rate
        if sample_rate != target:
            if self._resampler is None:
                import soxr

                self._resampler = soxr.ResampleStream(int(sample_rate), target, 1, dtype="float32", quality="HQ")
            x = torch.from_numpy(self._resampler.resample_chunk(x.numpy(), last=False).copy())
        self._input_rate = int(sample_rate)
        if x.numel():
            self._queued.append(x)
            self.samples_received += x.numel()
            self.audio_samples += x.numel()

    def input_finished(self) -> None:
        """No more audio: the next decode() flushes what is left, with the tail padding
        (:data:`asr.pipeline.TAIL_PADDING_SECONDS` of silence, as full-utterance decoding has), and finalises the
        last segment."""
        if self.finished:
            return
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                self._queued.append(torch.from_numpy(tail.copy()))
                self.audio_samples += tail.size
        self._queued.append(self._recognizer.bundle.tail_padding())  # not counted as received audio
        self.finished = True

    # -- output -----------------------------------------------------------------------------------------
    @property
    def partial(self) -> str:
        """The current segment's text so far: ``result.partial`` alone, without the token times, confidences
        and words ``result`` builds over the whole segment (a server reads this after every chunk)."""
        rec = self._recognizer
        return rec.best_hypothesis(self._progress.decoder).text(rec.bundle.tokenizer)

    @property
    def result(self) -> StreamResult:
        rec = self._recognizer
        hyp = rec.best_hypothesis(self._progress.decoder)
        return StreamResult(
            partial=hyp.text(rec.bundle.tokenizer),
            finals=tuple(self.finals),
            partial_tokens=tuple(rec.bundle.tokenizer.decode_tokens(hyp.tokens)),
            partial_times=tuple(round(f * rec.seconds_per_frame, 3) for f in hyp.frames),
            partial_confidences=hyp.confidences,
            partial_words=rec.timed_words(hyp),
        )

    @property
    def is_done(self) -> bool:
        """Input finished and everything decoded."""
        return self.finished and not self._queued and self.frames_ready < self._recognizer.subsampling_factor

    @property
    def holds_state(self) -> bool:
        """Whether the stream still holds an encoder state (its own or a row of a batch): False once released."""
        return self._encoder is not None

    # -- for the recognizer -----------------------------------------------------------------------------
    @property
    def has_audio(self) -> bool:
        """Samples accepted but not featurised yet."""
        return bool(self._queued)

    def take_audio(self) -> torch.Tensor:
        """The samples accepted since the last call, in one tensor (the queue is emptied)."""
        queued, self._queued = self._queued, []
        return torch.cat(queued) if len(queued) > 1 else queued[0]

    @property
    def progress(self) -> StreamProgress:
        """The stream's state but its encoder state (reading it never materialises a batch row)."""
        return self._progress

    def update(self, **fields) -> None:
        """Replace fields of ``progress`` (front end, frames, decoder, segment start, trailing blanks)."""
        self._progress = self._progress._replace(**fields)

    @property
    def frames_ready(self) -> int:
        """Normalised feature frames not yet consumed by the encoder."""
        return self._progress.feats.shape[0]

    @property
    def batch_row(self) -> tuple[StreamBatch, int] | None:
        """(batch, row) while this stream's encoder state is a row of a batch state nobody has read since."""
        encoder = self._encoder
        return encoder if encoder is not None and not isinstance(encoder, EncoderState) else None

    def encoder_state(self) -> EncoderState:
        """The stream's own encoder state (a batch row becomes its own views); ValueError once freed."""
        if self._encoder is None:
            raise ValueError(f"stream {self.id} is done or closed: its state is freed (its result stays readable)")
        if not isinstance(self._encoder, EncoderState):
            batch, row = self._encoder
            self._encoder = batch.row(row)
        return self._encoder

    def set_encoder(self, encoder: EncoderState | tuple[StreamBatch, int]) -> None:
        """The encoder state after a step: the stream's own, or (batch, row b) of a batch state."""
        self._encoder = encoder

    def release(self) -> None:
        """Free the encoder state (done or closed); the result stays readable."""
        self._encoder = None


def _same_batch(group: list[Stream]) -> StreamBatch | None:
    """The batch whose rows are exactly ``group``'s streams in order (stepped together last time and read by no
    one since), or None."""
    first = group[0].batch_row
    if first is None or first[0].size != len(group):
        return None
    batch = first[0]
    for b, s in enumerate(group):
        row = s.batch_row
        if row is None or row[0] is not batch or row[1] != b:
            return None
    return batch


class Recognizer:
    """Owns one model on one device and steps any number of streams in batches."""

    def __init__(
        self,
        bundle: AsrModel,
        *,
        device: str | torch.device | None = None,
        config: RecognizerConfig | None = None,
        beam: int | None = None,
        endpoint: EndpointConfig | None = None,
        lm: LMDecoder | None = None,
    ) -> None:
        """``lm``: decode with a lexicon / n-gram LM beam search (asr.decoding.lm_decoder) instead of greedy or
        prefix beam search; built (and its files checked) once, it is shared by every stream, each of which runs
        its own search."""
        config = config or RecognizerConfig()
        if beam is not None:
            config = dataclasses.replace(config, beam=beam)
        if endpoint is not None:
            config = dataclasses.replace(config, endpoint=endpoint)
        self.config = config
        self.device = resolve_device(device)  # ValueError for CUDA where there is none
        if lm is not None:
            if config.beam > 1:
                raise ValueError(f"choose one decoder: prefix beam search (beam={config.beam}) or an LM decoder")
            if lm.tokenizer.tokens != bundle.tokenizer.tokens:
                raise ValueError("the LM decoder was built for another tokenizer than this model's")
        self.lm = lm
        if not bundle.model.config.causal:
            raise ValueError("this model is bidirectional (causal=False): it cannot stream; use full-utterance mode")
        self.bundle = bundle.to(self.device)
        self.bundle.model.eval()
        self.subsampling_factor = self.bundle.model.subsampling_factor  # feature frames per model frame
        if config.chunk_frames % self.subsampling_factor:
            raise ValueError(
                f"chunk_frames must be a positive multiple of the model's subsampling ({self.subsampling_factor}), "
                f"got {config.chunk_frames}"
            )
        # The step: a snapshot of the weights laid out for inference (build a new Recognizer after changing
        # the model), or the model's own step.
        form = _STEP_KERNELS[config.step]
        self.packed_step = PackedStep(self.bundle.model, kernel=form[0], fused=form[1]) if form is not None else None
        self.fbank = StreamingFbank(bundle.features)
        self.sample_rate = bundle.features.sample_rate
        self.seconds_per_frame = bundle.seconds_per_frame
        self._ids = itertools.count()
        # the open streams the caller still holds: weak references, so a stream dropped without close_stream
        # is freed with its state; done streams leave at once (see _release)
        self.streams: weakref.WeakValueDictionary[int, Stream] = weakref.WeakValueDictionary()

    # -- streams ----------------------------------------------------------------------------------------
    def _new_decoder(self, frame: int) -> GreedyState | BeamState | LMDecoderState:
        if self.lm is not None:
            return self.lm.init_state(frame)
        return GreedyState(frame=frame) if self.config.beam == 1 else BeamState(frame=frame)

    def best_hypothesis(self, decoder: GreedyState | BeamState | LMDecoderState) -> Hypothesis:
        """The current best hypothesis of a stream's decoder state."""
        if isinstance(decoder, GreedyState):
            return decoder.hyp
        if isinstance(decoder, LMDecoderState):
            return self.lm.best(decoder)
        return decoder.best()

    def timed_words(self, hyp: Hypothesis, *, end: float = float("inf")) -> tuple[TimedWord, ...]:
        """A lexicon decoder's words of ``hyp`` with their times in seconds, none past ``end`` (empty for other
        decoders)."""
        spf = self.seconds_per_frame
        return tuple(
            TimedWord(w.text, round(min(w.start * spf, end), 3), round(min(w.end * spf, end), 3),
                      round(w.confidence, 4))
            for w in hyp.words or ()
        )  # fmt: skip

    def initial_state(self) -> StreamState:
        decoder = self._new_decoder(0)
        return StreamState(
            fbank=self.fbank.init_state(),
            feats=torch.zeros(0, self.bundle.features.n_mels),
            encoder=self.bundle.model.init_state(1, self.device),
            decoder=decoder,
            segment_start=0,
            trailing_blanks=0,
        )

    def create_stream(self) -> Stream:
        stream = Stream(self, next(self._ids), self.initial_state())
        self.streams[stream.id] = stream
        return stream

    def close_stream(self, stream: Stream) -> None:
        """Forget ``stream`` and free its state (its result stays readable; feeding it is then an error)."""
        self._check_own(stream)
        stream.closed = True
        self._release(stream)

    def _release(self, stream: Stream) -> None:
        """Drop ``stream`` from ``streams`` and free its encoder state (or its row of a batch state)."""
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        stream.release()

    def _check_own(self, stream: Stream) -> None:
        if not isinstance(stream, Stream):
            raise ValueError(f"expected a Stream from Recognizer.create_stream, got {type(stream).__name__}")
        if stream.recognizer is not self:
            raise ValueError(
                f"stream {stream.id} belongs to another Recognizer (each recognizer steps only the streams its "
                "create_stream made)"
            )

    # -- the batched step -------------------------------------------------------------------------------
    @torch.inference_mode()
    def decode(self, streams: list[Stream] | None = None) -> list[Stream]:
        """Featurise queued audio and run encoder steps for every stream with enough frames.

        Returns the streams whose results changed. Streams that finished their input are flushed.
        """
        streams = list(self.streams.values()) if streams is None else list(streams)
        seen: set[int] = set()
        for s in streams:
            self._check_own(s)
            if s.closed:
                raise ValueError(f"stream {s.id} is closed")
            if s.id in seen:
                raise ValueError(f"stream {s.id} is passed twice to one decode() call; pass each stream once")
            seen.add(s.id)
        self._featurise([s for s in streams if s.has_audio])
        changed: dict[int, Stream] = {}
        factor = self.subsampling_factor
        while True:
            groups: dict[int, list[Stream]] = defaultdict(list)
            for s in streams:
                n = s.frames_ready
                if n >= self.config.chunk_frames:
                    groups[self.config.chunk_frames].append(s)
                elif s.finished and n >= factor:
                    groups[n - n % factor].append(s)
            if not groups:
                break
            for n, group in groups.items():
                self._step(group, n)  # softmax KV caches of different lengths stack too (left-padded)
                for s in group:
                    changed[s.id] = s
        for s in streams:
            if s.is_done:
                if self._finalize(s, "input_finished"):
                    changed[s.id] = s
                self._release(s)  # done: nothing left to step
        return list(changed.values())

    def _featurise(self, streams: list[Stream]) -> None:
        if not streams:
            return
        chunks = [s.take_audio() for s in streams]
        feats, fstates = self.fbank.step_batch(chunks, [s.progress.fbank for s in streams])
        for s, f, fs in zip(streams, feats, fstates):
            f = self.bundle.cmvn.apply(f)
            old = s.progress.feats
            s.update(fbank=fs, feats=torch.cat([old, f]) if f.numel() else old)

    def _step(self, group: list[Stream], n: int) -> None:
        x = torch.stack([s.progress.feats[:n] for s in group]).to(self.device)  # [B, n, n_mels]
        batched = len(group) > 1
        if not batched:
            state = group[0].encoder_state()
        elif (batch := _same_batch(group)) is not None:  # the last step's batch, rows in this order, unread since
            state = batch.state
        else:
            state = StreamBatch.stack([s.encoder_state() for s in group]).state  # fresh copies
        # a batch state is the recognizer's own (stacked here, or rows nobody has read): updated in place
        if self.packed_step is not None:
            log_probs, new_state = self.packed_step(x, state, donate=batched)  # [B, n / factor, V]
        else:
            log_probs, new_state = self.bundle.model.step(x, state)
        lp_cpu = log_probs.float().cpu()
        best_lp, best = lp_cpu.max(-1)  # [B, frames] best label per frame: the greedy decoder's and the endpoint's
        best, best_lp = best.tolist(), best_lp.tolist()
        blank = self.bundle.tokenizer.blank_id
        new_batch = StreamBatch(new_state) if batched else None
        for b, s in enumerate(group):
            st = s.progress
            if isinstance(st.decoder, GreedyState):
                decoder = greedy_advance(best[b], best_lp[b], st.decoder, blank=blank)
            elif isinstance(st.decoder, LMDecoderState):
                decoder = self.lm.step(lp_cpu[b], st.decoder)
            else:
                decoder = beam_step(lp_cpu[b], st.decoder, beam=self.config.beam, blank=blank)
            nonblank = [i for i, label in enumerate(best[b]) if label != blank]
            trailing = st.trailing_blanks + lp_cpu.shape[1] if not nonblank else lp_cpu.shape[1] - 1 - nonblank[-1]
            s.update(feats=st.feats[n:], decoder=decoder, trailing_blanks=trailing)
            s.set_encoder((new_batch, b) if batched else new_state)  # a batch row: see Stream.batch_row
            if self.config.keep_log_probs:
                s.log_probs.append(lp_cpu[b])
            self._check_endpoint(s)

    def _check_endpoint(self, s: Stream) -> None:
        st = s.progress
        if not self.config.endpoint.enabled:
            return
        frame = st.decoder.frame
        spf = self.seconds_per_frame
        if isinstance(st.decoder, LMDecoderState):
            # a frame whose best label is not the blank in this segment (asking the search is dearer)
            has_speech = st.trailing_blanks < frame - st.segment_start
        else:
            has_speech = bool(self.best_hypothesis(st.decoder).tokens)
        silence = min(st.trailing_blanks, frame - st.segment_start)
        rule = detect_endpoint(
            self.config.endpoint,
            segment_seconds=(frame - st.segment_start) * spf,
            trailing_silence=silence * spf,
            has_speech=has_speech,
        )
        if rule is not None:
            self._finalize(s, rule)

    def _finalize(self, s: Stream, rule: str) -> bool:
        """Close the current segment (a final result if it has speech) and start a new one."""
        st = s.progress
        frame = st.decoder.frame
        if rule == "input_finished" and st.segment_start == frame:
            return False  # nothing since the last segment (decode() after the end, again)
        # An LM search ends here: its final hypothesis has the LM's end-of-sentence score
        hyp = self.lm.finish(st.decoder) if isinstance(st.decoder, LMDecoderState) else self.best_hypothesis(st.decoder)
        spf = self.seconds_per_frame
        # the last segment's frames run into the tail padding: no time past the audio's end
        end = s.audio_samples / self.sample_rate if rule == "input_finished" else float("inf")
        produced = False
        if hyp.words if hyp.words is not None else hyp.tokens:
            tok = self.bundle.tokenizer
            s.finals.append(
                Segment(
                    text=hyp.text(tok),
                    start=round(min(st.segment_start * spf, end), 3),
                    end=round(min(frame * spf, end), 3),
                    tokens=tuple(tok.decode_tokens(hyp.tokens)),
                    token_times=tuple(round(min(f * spf, end), 3) for f in hyp.frames),
                    confidences=hyp.confidences,
                    endpoint=rule,
                    words=self.timed_words(hyp, end=end),
                )
            )
            produced = True
        # a fresh decoder (search) per segment; a batch row stays a batch row
        s.update(decoder=self._new_decoder(frame), segment_start=frame)
        if self.config.endpoint.reset_attention_state and rule != "input_finished":
            s.set_encoder(self.bundle.model.init_state(1, self.device))
        return produced
