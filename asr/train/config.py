"""The training configuration: frozen dataclasses, every field documented. Recipes are YAML overrides of these."""

from __future__ import annotations

from dataclasses import dataclass, field

from asr.augment import (
    SPEED_FACTORS,
    BabbleConfig,
    CodecConfig,
    EqConfig,
    GainConfig,
    NoiseConfig,
    RoomConfig,
    SpecAugmentConfig,
    TelephoneConfig,
    VtlpConfig,
)
from asr.features import FbankConfig
from asr.model.config import ModelConfig

TOKENIZERS = ("char", "bpe", "phone")
OPTIMIZERS = ("adamw", "radam")
SCHEDULES = ("cosine", "constant", "inverse_sqrt")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ExtraTrainConfig:
    """A second training set mixed into every epoch (e.g. real speech beside synthetic)."""

    manifest: str = ""  # a manifest (.jsonl), a LibriSpeech-layout folder or a Kaldi data dir
    share: float = 0.15  # fraction of every epoch's training audio drawn from it (uniformly, with replacement)
    augment: bool = True  # the waveform chain (augment.room, noise, ...) applies to it too
    # the distillation weight of its utterances (None: distill.weight, as the main set's): e.g. the teacher only on
    # real speech, where it reads better than the student, with distill.weight 0 for the synthetic main set
    distill_weight: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"data.extra_train share must be in (0, 1), got {self.share}")
        if self.distill_weight is not None and not self.distill_weight >= 0.0:
            raise ValueError(f"data.extra_train distill_weight must be >= 0 or null, got {self.distill_weight}")


@dataclass(frozen=True)
class ExtraDevConfig:
    """Another set decoded at every epoch end beside ``data.dev`` (e.g. real speech); rows in dev_sets.csv."""

    name: str = ""  # a short name for the set (the ``set`` column of dev_sets.csv)
    manifest: str = ""  # a manifest (.jsonl), a LibriSpeech-layout folder or a Kaldi data dir
    max_utterances: int | None = None  # cap on the utterances decoded (None: all)


@dataclass(frozen=True)
class DataConfig:
    train: str = "data/synth/train"  # a manifest (.jsonl), a LibriSpeech-layout folder or a Kaldi data dir
    dev: str | None = "data/synth/dev"  # evaluated at epoch ends (greedy WER); None: no dev evaluation
    tokenizer: str = "char"  # "char", "bpe" (sentencepiece trained on the train text) or "phone" (CMUdict)
    bpe_vocab_size: int = 256  # "bpe" only: vocabulary size, blank included
    max_batch_frames: int = 20000  # padded input frames per batch (longest utterance x batch size)
    max_batch_size: int | None = None  # at most this many utterances per batch
    num_buckets: int = 20  # length buckets of the dynamic batcher
    max_utterance_seconds: float = (
        30.0  # longer utterances are skipped (counted and logged), never trained on
    )
    dev_max_utterances: int | None = 300  # cap on the dev utterances decoded at each epoch end
    cmvn_max_utterances: int = 2000  # utterances sampled for the global CMVN statistics
    on_oov: str = "skip_utterance"  # text the tokenizer cannot encode: "skip_utterance" (counted) or "raise"
    extra_train: tuple[ExtraTrainConfig, ...] = ()  # other sets mixed into every epoch at a share of its audio
    extra_dev: tuple[ExtraDevConfig, ...] = ()  # more sets decoded at epoch ends (greedy), logged in dev_sets.csv
    num_workers: int = 1  # DataLoader worker processes building batches ahead of training (0: in the trainer)
    allow_pipes: bool = False  # run Kaldi 'cmd |' audio specs of the data sets (shell commands from files: opt in)
    prefetch_batches: int = 4  # batches each worker builds ahead

    def __post_init__(self) -> None:
        if any(not d.name or not d.manifest for d in self.extra_dev):
            raise ValueError(f"data.extra_dev: every entry needs a name and a manifest, got {self.extra_dev}")
        names = [d.name for d in self.extra_dev]
        if len(set(names)) != len(names) or "dev" in names:
            raise ValueError(f"data.extra_dev names must be distinct and not 'dev', got {names}")
        if any(not e.manifest for e in self.extra_train):
            raise ValueError("data.extra_train: every entry needs a manifest")
        if sum(e.share for e in self.extra_train) >= 1.0:
            raise ValueError(f"data.extra_train shares must sum to < 1, got {[e.share for e in self.extra_train]}")
        if self.num_workers < 0 or self.prefetch_batches < 1:
            raise ValueError(
                f"need data.num_workers >= 0 and prefetch_batches >= 1, got {self.num_workers}, "
                f"{self.prefetch_batches}"
            )
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"data.tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if self.on_oov not in ("skip_utterance", "raise"):
            raise ValueError(f"data.on_oov must be 'skip_utterance' or 'raise', got {self.on_oov!r}")
        if self.max_batch_frames < 1 or self.max_utterance_seconds <= 0:
            raise ValueError(
                f"need max_batch_frames >= 1 and max_utterance_seconds > 0, got {self.max_batch_frames}, "
                f"{self.max_utterance_seconds}"
            )


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation, drawn anew every epoch (asr/augment). Every waveform stage is off (prob 0) by
    default; recipes/synth/world.yaml turns them on for clean synthetic speech. Order: speed -> room -> noise ->
    babble -> EQ -> level -> telephone -> codec -> fbank -> VTLP -> CMVN -> SpecAugment."""

    speed_perturb: bool = True  # speed perturbation, one factor per utterance from speed_factors
    speed_factors: tuple[float, ...] = SPEED_FACTORS  # drawn uniformly (tempo and pitch together, as sox speed)
    vtlp: VtlpConfig = field(default_factory=VtlpConfig)  # vocal tract length: warp of the fbank frequency axis
    room: RoomConfig = field(default_factory=RoomConfig)  # simulated rooms (RIR bank, pyroomacoustics)
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # coloured noise at an SNR
    babble: BabbleConfig = field(default_factory=BabbleConfig)  # other training utterances under the speech
    eq: EqConfig = field(default_factory=EqConfig)  # microphone EQ (shelves, peaks)
    gain: GainConfig = field(default_factory=GainConfig)  # recording level
    telephone: TelephoneConfig = field(default_factory=TelephoneConfig)  # 300-3400 Hz band (and 8 kHz)
    codec: CodecConfig = field(default_factory=CodecConfig)  # mu-law, GSM, Opus, codec2, MP3 round trips
    spec_augment: bool = True  # frequency and time masking of the normalised features
    spec: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)  # masking details

    def __post_init__(self) -> None:
        if not self.speed_factors or not all(0.5 <= f <= 2.0 for f in self.speed_factors):
            raise ValueError(f"augment.speed_factors must be a non-empty list in [0.5, 2], got {self.speed_factors}")

    @property
    def fastest_speed(self) -> float:
        """The largest speed factor in use (the shortest audio: the fewest CTC frames), 1.0 without perturbation."""
        return max(self.speed_factors) if self.speed_perturb else 1.0


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "radam" (the paper's WSJ run used RAdam)
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-2  # decoupled weight decay (AdamW) / L2 (RAdam with decoupled_weight_decay)
    betas: tuple[float, ...] = (0.9, 0.98)  # Adam betas
    warmup_steps: int = 500  # linear warm-up from 0 to lr
    schedule: str = "cosine"  # after warm-up: "cosine" to min_lr_ratio * lr, "constant", or "inverse_sqrt"
    min_lr_ratio: float = 0.05  # cosine floor as a fraction of lr
    grad_clip: float = 5.0  # max global gradient norm (0 = no clipping)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if len(self.betas) != 2 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError(
                f"bad optimiser settings: betas {self.betas}, lr {self.lr}, warmup {self.warmup_steps}"
            )


@dataclass(frozen=True)
class DistillConfig:
    """Frame-level distillation from a teacher's phone posteriors (asr/distill; issue 13's hama lever): the loss
    becomes CTC + ``weight`` * KL(teacher || student) over the frames, per utterance (an extra training set may
    give its own weight: ``data.extra_train[k].distill_weight``)."""

    # a store folder from tools/teacher_posteriors.py, made for this model's tokens; utterances it lacks train on
    # CTC alone
    teacher: str | None = None
    weight: float = 0.0  # 0: no distillation
    # student frames by which the teacher's targets are shifted later (a causal student emits later than the
    # bidirectional teacher): tools/teacher_posteriors.py --measure-delay
    delay_frames: int = 1

    def __post_init__(self) -> None:
        if not self.weight >= 0.0:
            raise ValueError(f"distill.weight must be >= 0, got {self.weight}")
        if self.weight > 0 and not self.teacher:
            raise ValueError("distill.weight > 0 needs distill.teacher (a folder made by tools/teacher_posteriors.py)")
        if self.delay_frames < 0:
            raise ValueError(f"distill.delay_frames must be >= 0, got {self.delay_frames}")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(
        default_factory=ModelConfig
    )  # the encoder (vocab_size is set from the tokenizer)
    features: FbankConfig = field(default_factory=FbankConfig)  # front end (saved with the model)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)  # off unless distill.weight > 0
    # Warm start: a model file (safetensors, as asr/assets/model/model.safetensors or a run's final.safetensors)
    # whose weights, tokenizer and CMVN a NEW run starts from, with a fresh optimiser and schedule. Its
    # architecture must equal `model` (checked). Ignored on --resume (the run's checkpoint has the weights).
    init_from: str | None = None
    epochs: int = 20  # passes over the training data
    max_steps: int | None = None  # stop after this many optimiser steps (None: run all epochs)
    seed: int = 0  # seeds batching, augmentation, dropout and initialisation (with the rank)
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA and CPUs with AMX/AVX512-BF16, else fp32), "fp32", "bf16"
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
    num_threads: int | None = None  # torch intra-op threads on CPU (None: torch's default)
    checkpoint_every_steps: int = 500  # write a resumable checkpoint every N steps (and at each epoch end)
    keep_checkpoints: int = 3  # step checkpoints kept on disk (epoch-end checkpoints are all kept)
    average_last: int = 3  # the final model averages the last N epoch-end checkpoints (1 = no averaging)
    log_every_steps: int = 20  # metrics row frequency in metrics.csv

    @property
    def distill_weights(self) -> tuple[float, ...]:
        """The distillation weight of each training set's utterances: the main set's, then each extra set's."""
        extra = tuple(self.distill.weight if e.distill_weight is None else e.distill_weight
                      for e in self.data.extra_train)  # fmt: skip
        return (self.distill.weight, *extra)

    @property
    def distills(self) -> bool:
        """Whether any training set's utterances are distilled."""
        return any(w > 0 for w in self.distill_weights)

    def __post_init__(self) -> None:
        if self.distills and not self.distill.teacher:
            raise ValueError(
                f"distillation weights {list(self.distill_weights)} (distill.weight, then data.extra_train's) need "
                "distill.teacher (a folder made by tools/teacher_posteriors.py)"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be None (torch's default) or >= 1, got {self.num_threads}")
        if self.epochs < 1 or self.checkpoint_every_steps < 1 or self.average_last < 1:
            raise ValueError(
                f"need epochs, checkpoint_every_steps, average_last >= 1; got {self.epochs}, "
                f"{self.checkpoint_every_steps}, {self.average_last}"
            )
