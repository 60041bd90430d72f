"""What a training run prepares before its loop: the checked configuration and the run folder, the data (training
sets, tokenizer, CMVN, waveform augmenter, dev sets, batch planner) and the model (fresh, warm-started from
``init_from`` or resumed from a checkpoint) with its optimiser, learning-rate schedule and precision. The loop
itself, its logs, checkpoints and final model are in asr.train.trainer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from asr.augment import WaveAugmenter, load_or_build_rir_bank
from asr.augment.chain import WAVE_STAGES
from asr.configs import apply_overrides, config_to_dict
from asr.data.batching import BatchingConfig, DynamicBatcher
from asr.data.manifest import refuse_pipes
from asr.data.sources import load_utterances
from asr.features import GlobalCMVN
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.pipeline import AsrModel
from asr.text.base import Tokenizer
from asr.text.tokenizers import build_tokenizer, tokenizer_from_dict
from asr.train import checkpoints as ckpts
from asr.train.config import TrainConfig
from asr.train.data import ExtraSet, MixedPlanner, TrainingData, seconds_of
from asr.train.distributed import DistInfo, barrier, pick_device
from asr.train.precision import PrecisionChoice, choose_precision
from asr.train.resume import check_resume_config

__all__ = ["load_train_config"]

logger = logging.getLogger(__name__)


def _lr_lambda(cfg: TrainConfig, total_steps: int):
    o = cfg.optim

    def fn(step: int) -> float:
        if o.warmup_steps and step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        if o.schedule == "inverse_sqrt":
            return math.sqrt(max(o.warmup_steps, 1) / (step + 1))
        span = max(total_steps - o.warmup_steps, 1)
        progress = min((step - o.warmup_steps) / span, 1.0)
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return fn


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))
    return torch.optim.RAdam(groups, lr=o.lr, betas=tuple(o.betas), decoupled_weight_decay=True)


def load_train_config(recipe: str | None, overrides: dict) -> TrainConfig:
    from asr.configs import load_recipe

    merged = load_recipe(recipe) if recipe else {}
    config = apply_overrides(TrainConfig(), merged)
    return apply_overrides(config, overrides)


def _wave_augmenter(config: TrainConfig, run_dir: Path, info: DistInfo) -> WaveAugmenter | None:
    """The waveform chain of the recipe (None when every stage is off); rank 0 builds the RIR bank once (cached
    in augment.room.cache_dir or <run dir>/cache), the other ranks load it."""
    aug, sr = config.augment, config.features.sample_rate
    bank = None
    if aug.room.prob > 0:
        options = {"cache_dir": run_dir / "cache", "seed": config.seed, "sample_rate": sr}
        if info.is_main:
            bank = load_or_build_rir_bank(aug.room, **options, progress=True)
        barrier(info)
        if bank is None:
            bank = load_or_build_rir_bank(aug.room, **options, progress=False)
    augmenter = WaveAugmenter.from_config(aug, sample_rate=sr, rir_bank=bank)
    if not augmenter.enabled:
        return None
    if info.is_main:
        on = {name: getattr(aug, name).prob for name in ("vtlp", *WAVE_STAGES) if getattr(aug, name).prob > 0}
        logger.info("waveform augmentation (probabilities): %s", on)
    return augmenter


def _load_init_model(config: TrainConfig):
    """The model a warm start begins from (clear errors for a missing or foreign file)."""
    from asr.pipeline import load_asr_model

    path = Path(config.init_from)
    if not path.is_file():
        raise ValueError(f"init_from: {path} is not a file (give a model .safetensors, e.g. a run's final one)")
    init = load_asr_model(path)
    if init.features != config.features:
        raise ValueError(
            f"init_from: {path} was trained with features {init.features}, the recipe has {config.features}"
        )
    if init.tokenizer.kind != config.data.tokenizer:
        raise ValueError(
            f"init_from: {path} has a {init.tokenizer.kind!r} tokenizer, the recipe asks for {config.data.tokenizer!r}"
        )
    return init


def _warm_start(model: CTCModel, init, path: str) -> None:
    """Copy ``init``'s weights into ``model``, refusing any difference of architecture."""
    want = dataclasses.asdict(model.config)
    have = dataclasses.asdict(init.model.config)
    diffs = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    if diffs:
        raise ValueError(
            f"init_from: {path} has another architecture than the recipe's model: "
            + ", ".join(f"{k}: file {a!r}, recipe {b!r}" for k, (a, b) in sorted(diffs.items()))
        )
    model.load_state_dict(init.model.state_dict())


def _resume(ckpt_dir: Path, candidates: list[str], device, model, optimizer, scheduler, info: DistInfo):
    """Load the first usable checkpoint of ``candidates`` into the model, optimiser and scheduler: (position,
    name). Unusable ones are set aside (rank 0) with a warning; none usable is a ValueError naming them all."""
    problems = []
    for name in candidates:
        try:
            bundle, position, opt_state = ckpts.load_training_checkpoint(ckpt_dir, name, device=device)
            model.load_state_dict(bundle.model.state_dict())
            optimizer.load_state_dict(opt_state["optimizer"])
            scheduler.load_state_dict(opt_state["scheduler"])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            problems.append(f"{name}: {exc}")
            logger.warning("checkpoint %s cannot be resumed from (%s); trying the one before it", name, exc)
            continue
        barrier(info)  # every rank has read its checkpoint before rank 0 moves the bad ones aside
        if info.is_main:
            for bad in candidates[: candidates.index(name)]:
                ckpts.set_aside(ckpt_dir, bad)
                logger.warning("set aside the unusable checkpoint %s (%s.*.bad)", bad, ckpt_dir / bad)
        return position, name
    raise ValueError(f"--resume: no usable checkpoint in {ckpt_dir}:\n  " + "\n  ".join(problems))


@dataclasses.dataclass
class _Run:
    """What every step reads: the configuration, where the run lives, and this process's place in it."""

    config: TrainConfig
    run_dir: Path
    info: DistInfo
    device: torch.device
    resume: bool
    candidates: list[str]  # the checkpoints a resume tries, newest first ([] for a fresh run)
    current: dict  # the configuration as config.yaml and every checkpoint store it

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"


@dataclasses.dataclass
class _Data:
    """The training set and everything derived from it before the model exists."""

    data: TrainingData
    tokenizer: Tokenizer
    cmvn: GlobalCMVN
    augmenter: WaveAugmenter | None
    dev: TrainingData | None  # (rank 0 only)
    extra_devs: list[tuple[str, list]]  # (rank 0 only) scored as they are: every utterance counts in the figure
    planner: DynamicBatcher | MixedPlanner  # DynamicBatcher or MixedPlanner: the batches of each epoch
    init: AsrModel | None  # the model a warm start begins from
    model_cfg: ModelConfig  # the recipe's, sized to the tokenizer


@dataclasses.dataclass
class _Model:
    """The model and what moves it: optimiser, schedule, precision, and where training stands."""

    model: CTCModel
    net: torch.nn.Module  # the model, wrapped for DDP when distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    precision: PrecisionChoice
    bundle: AsrModel  # what checkpoints and dev scoring see
    position: ckpts.Position
    epoch_batches: list[int]


def _prepare_run(config: TrainConfig, run_dir: Path, *, resume: bool, info: DistInfo) -> _Run:
    """Check the configuration (against the run's own when resuming), pick the device, write config.yaml."""
    if config.model.input_dim != config.features.n_mels:
        raise ValueError(
            f"model.input_dim={config.model.input_dim} must equal features.n_mels={config.features.n_mels}"
        )
    device = pick_device(config.device, info)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    ckpt_dir = run_dir / "checkpoints"
    config_path = run_dir / "config.yaml"
    current = config_to_dict(config)
    candidates = ckpts.resume_candidates(ckpt_dir) if resume else []
    if resume:
        if not candidates:
            raise ValueError(f"--resume: no checkpoint to resume from in {ckpt_dir}")
        try:
            saved = yaml.safe_load(config_path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"--resume: the run's {config_path} cannot be read ({exc})") from None
        if not isinstance(saved, dict):
            raise ValueError(f"--resume: the run's {config_path} is not a config mapping")
        # Compare in YAML form: tuples (optim.betas) come back from config.yaml as lists.
        check_resume_config(saved, yaml.safe_load(yaml.safe_dump(current, sort_keys=False)))
    elif ckpts.has_checkpoints(ckpt_dir):
        raise ValueError(f"{run_dir} already holds checkpoints (in {ckpt_dir}); pass --resume or use another run dir")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(current, sort_keys=False))
    barrier(info)
    return _Run(config, run_dir, info, device, resume, candidates, current)


def _prepare_data(run: _Run) -> _Data:
    """The training sets, tokenizer, CMVN, waveform augmenter, dev sets and batch planner (tokenizer.json and
    cmvn.safetensors are written once by rank 0, read back by every rank)."""
    config, info, run_dir = run.config, run.info, run.run_dir
    train_utts = list(load_utterances(config.data.train))
    logger.info(
        "train: %d utterances, %.2f h from %s",
        len(train_utts),
        seconds_of(train_utts) / 3600,
        config.data.train,
    )
    sources = [0] * len(train_utts)
    for k, extra in enumerate(config.data.extra_train, start=1):
        extra_utts = load_utterances(extra.manifest)
        logger.info(
            "extra train set %d: %d utterances, %.2f h from %s, %.0f%% of every epoch's audio",
            k,
            len(extra_utts),
            seconds_of(extra_utts) / 3600,
            extra.manifest,
            100 * extra.share,
        )
        train_utts += extra_utts
        sources += [k] * len(extra_utts)
    refuse_pipes(train_utts, opt_in="data.allow_pipes=true", where="data.train/data.extra_train")
    init = _load_init_model(config) if config.init_from and not run.resume else None
    tok_path = run_dir / "tokenizer.json"
    if info.is_main and not tok_path.exists():
        if init is not None:  # a warm start keeps the model's output layer: its tokenizer, not a new one
            tokenizer = init.tokenizer
        else:
            opts = {"vocab_size": config.data.bpe_vocab_size} if config.data.tokenizer == "bpe" else {}
            tokenizer = build_tokenizer(config.data.tokenizer, texts=[u.text for u in train_utts], **opts)
        tok_path.write_text(json.dumps(tokenizer.to_dict()))
    barrier(info)
    tokenizer = tokenizer_from_dict(json.loads(tok_path.read_text()))
    model_cfg = dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size)

    subsampling = CTCModel(dataclasses.replace(model_cfg, num_layers=1)).subsampling_factor
    data = TrainingData(
        train_utts,
        tokenizer,
        features=config.features,
        subsampling=subsampling,
        max_seconds=config.data.max_utterance_seconds,
        on_oov=config.data.on_oov,
        fastest_speed=config.augment.fastest_speed,
        sources=sources,
    )
    data.no_wave_augment = frozenset(k for k, e in enumerate(config.data.extra_train, start=1) if not e.augment)
    if config.distills:
        data.teacher = _open_teacher(config, tokenizer, data)
    cmvn_path = run_dir / "cmvn.safetensors"
    if info.is_main and not cmvn_path.exists():
        if init is not None:  # the warm-started weights expect the features normalised as before
            init.cmvn.save(cmvn_path)
        else:
            data.fit_cmvn(max_utterances=config.data.cmvn_max_utterances, seed=config.seed).save(cmvn_path)
    barrier(info)
    cmvn = GlobalCMVN.load(cmvn_path)
    augmenter = _wave_augmenter(config, run_dir, info)

    dev = None
    if config.data.dev and info.is_main:
        dev_utts = load_utterances(config.data.dev)[: config.data.dev_max_utterances]
        refuse_pipes(dev_utts, opt_in="data.allow_pipes=true", where="data.dev")
        dev = TrainingData(
            dev_utts,
            tokenizer,
            features=config.features,
            subsampling=subsampling,
            max_seconds=config.data.max_utterance_seconds,
            on_oov="skip_utterance",
            name="dev",
        )

    extra_devs: list[tuple[str, list]] = []
    if info.is_main:
        for extra in config.data.extra_dev:
            extra_devs.append((extra.name, list(load_utterances(extra.manifest))[: extra.max_utterances]))
            refuse_pipes(extra_devs[-1][1], opt_in="data.allow_pipes=true", where=f"data.extra_dev {extra.name}")

    return _Data(data, tokenizer, cmvn, augmenter, dev, extra_devs, _planner(config, data, info), init, model_cfg)


def _open_teacher(config: TrainConfig, tokenizer: Tokenizer, data: TrainingData):
    """The distillation teacher's store for this run's tokens; says how much of the training set it covers."""
    from asr.distill.store import TeacherStore

    store = TeacherStore(config.distill.teacher, tokenizer.tokens)
    covered = sum(u.id in store for u in data.utterances)
    if covered == 0:
        raise ValueError(
            f"distill.teacher {config.distill.teacher} holds none of the {len(data.utterances)} training utterances "
            "(made for other manifests?)"
        )
    logger.info(
        "distillation: teacher %s (%s) covers %d of %d training utterances; weights %s (the main set, then each "
        "extra set), delay %d frames",
        config.distill.teacher, store.setup.get("teacher"), covered, len(data.utterances),
        "/".join(f"{w:g}" for w in config.distill_weights), config.distill.delay_frames,
    )  # fmt: skip
    return store


def _planner(config: TrainConfig, data: TrainingData, info: DistInfo) -> DynamicBatcher | MixedPlanner:
    """The epochs' batch plans: the main set alone, or mixed with the extra training sets."""
    batching = BatchingConfig(
        max_frames=config.data.max_batch_frames,
        max_batch_size=config.data.max_batch_size,
        num_buckets=config.data.num_buckets,
        seed=config.seed,
    )
    ids = [u.id for u in data.utterances]
    # (the batcher also reports the utterances no batch can hold, mixed or not)
    planner = DynamicBatcher(data.num_frames(), config=batching, rank=info.rank, world_size=info.world_size, ids=ids)
    if config.data.extra_train:
        extras = [ExtraSet(source=k, share=e.share) for k, e in enumerate(config.data.extra_train, start=1)]
        planner = MixedPlanner(
            data.num_frames(), data.sources, extras, config=batching, rank=info.rank, world_size=info.world_size
        )
    return planner


def _prepare_model(run: _Run, d: _Data) -> _Model:
    """The model (fresh, warm-started or resumed), its optimiser and schedule, and the position to start from."""
    config, info, device = run.config, run.info, run.device
    torch.manual_seed(config.seed)  # identical initialisation on every rank
    model = CTCModel(d.model_cfg).to(device)
    if d.init is not None:
        _warm_start(model, d.init, config.init_from)
        if info.is_main:
            logger.info("warm start from %s (fresh optimiser and schedule)", config.init_from)
    optimizer = _optimizer(config, model)
    epoch_batches = [len(d.planner.plan(e).batches) for e in range(config.epochs)]  # (mixing: varies a little)
    steps_per_epoch = epoch_batches[0]
    total_steps = sum(epoch_batches)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))
    position = ckpts.Position(step=0, epoch=0, batches_done=0)
    if run.resume:
        position, latest = _resume(run.ckpt_dir, run.candidates, device, model, optimizer, scheduler, info)
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            latest,
            position.step,
            position.epoch,
            position.batches_done,
        )
    if info.is_main:
        logger.info(
            "model: %s, %.2f M parameters; %d steps/epoch, %d steps planned; world size %d; device %s",
            d.model_cfg.attention,
            model.num_params() / 1e6,
            steps_per_epoch,
            total_steps,
            info.world_size,
            device,
        )
    net = DistributedDataParallel(model) if info.enabled else model
    precision = choose_precision(config.precision, device)
    if info.is_main:
        logger.info("%s", precision.reason)
    bundle = AsrModel(model=model, tokenizer=d.tokenizer, cmvn=d.cmvn, features=config.features)
    return _Model(model, net, optimizer, scheduler, precision, bundle, position, epoch_batches)
