"""The training loop: one code path for every recipe, on one CPU or many GPUs (torchrun + DDP).

Determinism: batching is a pure function of (seed, epoch, rank); augmentation and dropout are re-seeded at every
step from (seed, epoch, batch index, rank). So a run killed at any point and resumed from its latest checkpoint
(``--resume``) continues exactly as if it had never stopped: the logs too (rows after the checkpoint are dropped
before they are written again; the epoch's running train loss is in the checkpoint). A latest checkpoint that
cannot be read is set aside and the one before is used; a checkpoint that cannot be written (a full disk) stops the
run with an error, the last complete one intact.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from asr.audio import allowing_pipes
from asr.augment import WaveAugmenter, load_or_build_rir_bank
from asr.augment.chain import WAVE_STAGES
from asr.configs import apply_overrides, config_to_dict
from asr.data.batching import BatchingConfig, DynamicBatcher
from asr.data.manifest import refuse_pipes
from asr.data.sources import load_utterances
from asr.features import GlobalCMVN
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.pipeline import AsrModel, save_asr_model
from asr.text.base import Tokenizer
from asr.text.tokenizers import build_tokenizer, tokenizer_from_dict
from asr.train import checkpoints as ckpts
from asr.train.config import TrainConfig
from asr.train.data import BatchSource, ExtraSet, MixedPlanner, TrainingData, batch_stream, seconds_of, step_seed
from asr.train.distributed import DistInfo, barrier, cleanup, init_distributed, pick_device
from asr.train.precision import PrecisionChoice, choose_precision
from asr.train.resume import check_resume_config

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


def _rates(result) -> str:
    """How a dev result reads in the log: WER and CER, or PER alone for a phone model (its rows in dev.csv and
    dev_sets.csv keep their columns: the PER in ``wer``, ``nan`` for the CER)."""
    if result.unit == "phone":
        return f"PER {100 * result.wer:.2f}%"
    return f"WER {100 * result.wer:.2f}%, CER {100 * result.cer:.2f}%"


def _evaluate_extra_devs(bundle, extra_devs, log, *, epoch: int, step: int, config: TrainConfig) -> None:
    """Greedy WER/CER of every ``data.extra_dev`` set, one dev_sets.csv row each, with the trainer process's CPU
    time since this (re)start (all its threads; loader workers not included): the learning curve's x axis."""
    if not extra_devs:
        return
    from asr.evaluate import evaluate_batch

    cpu_s = time.process_time()
    for name, utterances in extra_devs:
        result = evaluate_batch(bundle, utterances, max_batch_frames=config.data.max_batch_frames, progress=False)
        row = {"epoch": epoch, "step": step, "set": name, "utterances": len(utterances)}
        log.write({**row, "wer": f"{result.wer:.4f}", "cer": f"{result.cer:.4f}", "trainer_cpu_s": f"{cpu_s:.0f}"})
        logger.info("epoch %d: dev set %s %s", epoch, name, _rates(result))


class _Metrics:
    """Append-only CSV logs (rank 0 only)."""

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)
        else:  # a resumed run keeps its file's columns (one started by an older version may lack new ones)
            with path.open(newline="") as f:
                self.fields = next(csv.reader(f), fields)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])

    def keep_until(self, column: str, last: int) -> None:
        """Drop the rows whose ``column`` is past ``last`` (written after the checkpoint a run resumes from: they
        are written again) and any half-written row; the file is replaced atomically."""
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))[1:]
        where = self.fields.index(column)
        kept = [r for r in rows if len(r) == len(self.fields) and r[where].isdigit() and int(r[where]) <= last]
        if len(kept) == len(rows):
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows([self.fields, *kept])
        os.replace(tmp, self.path)
        logger.info("%s: %d row(s) after the resumed checkpoint dropped", self.path.name, len(rows) - len(kept))


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False) -> Path:
    """Train (or resume) a run in ``run_dir``; returns the path of the final (averaged) model."""
    run_dir = Path(run_dir)
    info = init_distributed(
        "cuda" if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    try:
        with allowing_pipes(config.data.allow_pipes):  # (its loader workers inherit the setting)
            return _train(config, run_dir, resume=resume, info=info)
    finally:
        cleanup(info)


# --- the run, step by step: _train calls these in order ------------------------------------------------------------


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


@dataclasses.dataclass
class _Logs:
    """The run's CSV logs (rank 0 only; None on the other ranks)."""

    metrics: _Metrics | None = None
    dev: _Metrics | None = None
    sets: _Metrics | None = None


@dataclasses.dataclass
class _Progress:
    """Where the loop stands across epochs: the global step and the since-(re)start counters metrics.csv logs."""

    step: int
    done: bool
    t_start: float
    cpu_start: float
    audio_total: float = 0.0


def _train(config: TrainConfig, run_dir: Path, *, resume: bool, info: DistInfo) -> Path:
    run = _prepare_run(config, run_dir, resume=resume, info=info)
    data = _prepare_data(run)
    state = _prepare_model(run, data)
    logs = _open_logs(run, state.position)
    _train_epochs(run, data, state, logs)
    return _finalise(run, data, state)


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


def _open_logs(run: _Run, position: ckpts.Position) -> _Logs:
    """metrics.csv, dev.csv and dev_sets.csv (rank 0); a resumed run drops the rows after its checkpoint, which
    training writes again as it replays them."""
    if not run.info.is_main:
        return _Logs()
    logs = _Logs(
        metrics=_Metrics(
            run.run_dir / "metrics.csv",
            # (wall_s, audio_s, cpu_s: since the loop (re)started)
            [
                "step",
                "epoch",
                "loss",
                "loss_per_token",
                "lr",
                "grad_norm",
                "audio_s_per_s",
                "wall_s",
                "audio_s",
                "cpu_s",
                *(["distill"] if run.config.distills else []),  # the KL term, before its weight
            ],  # fmt: skip
        ),
        dev=_Metrics(
            run.run_dir / "dev.csv",
            ["epoch", "step", "dev_wer", "dev_cer", "epoch_seconds", "train_loss", "skipped_batches"],
        ),
        sets=_Metrics(
            run.run_dir / "dev_sets.csv",
            ["epoch", "step", "set", "utterances", "wer", "cer", "trainer_cpu_s"],
        ),
    )
    if run.resume:
        logs.metrics.keep_until("step", position.step)
        logs.dev.keep_until("epoch", position.epoch)
        logs.sets.keep_until("epoch", position.epoch)
    return logs


def _save(run: _Run, state: _Model, name: str, pos: ckpts.Position) -> None:
    """Write checkpoint ``name`` (rank 0; step checkpoints pruned to keep_checkpoints); every rank waits for it."""
    ckpt_dir = run.ckpt_dir
    if run.info.is_main:
        try:
            ckpts.save_training_checkpoint(
                ckpt_dir,
                name,
                state.bundle,
                position=pos,
                optimizer=state.optimizer,
                scheduler=state.scheduler,
                train_config=run.current,
            )
        except OSError as exc:  # a full disk, a quota, a folder gone: stop with the last checkpoint intact
            last = (ckpt_dir / "latest").read_text().strip() if (ckpt_dir / "latest").is_file() else "none"
            raise ValueError(
                f"cannot write checkpoint {name} in {ckpt_dir}: {exc} (disk full?); the last complete "
                f"checkpoint is {last}: make room, then continue with --resume"
            ) from exc
        if name.startswith("step-"):
            ckpts.prune_step_checkpoints(ckpt_dir, run.config.keep_checkpoints)
    barrier(run.info)


def _train_epochs(run: _Run, d: _Data, state: _Model, logs: _Logs) -> None:
    """Train from the position to the last epoch (or max_steps), the batches built ahead by the loader."""
    config, info, position = run.config, run.info, state.position
    progress = _Progress(
        step=position.step,
        done=config.max_steps is not None and position.step >= config.max_steps,
        t_start=time.time(),
        cpu_start=time.process_time(),
    )
    # Every batch still to train on, in order, built ahead of training by the loader's workers.
    keys = [
        (e, b)
        for e in range(position.epoch, config.epochs)
        for b in range(position.batches_done if e == position.epoch else 0, state.epoch_batches[e])
    ]
    if config.max_steps is not None:
        keys = keys[: max(config.max_steps - progress.step, 0)]
    source = BatchSource(
        d.data, d.planner, cmvn=d.cmvn, augment=config.augment, augmenter=d.augmenter, seed=config.seed, rank=info.rank
    )
    batches = batch_stream(source, keys, num_workers=config.data.num_workers, prefetch=config.data.prefetch_batches)
    if info.is_main:
        logger.info("batches built by %d loader worker(s)", config.data.num_workers)
    for epoch in range(position.epoch, config.epochs):
        if progress.done:
            break
        if not _train_epoch(run, d, state, logs, progress, batches, epoch):
            break  # stopped by max_steps inside the epoch
    del batches  # stops the loader's workers


def _train_epoch(run: _Run, d: _Data, state: _Model, logs: _Logs, progress: _Progress, batches, epoch: int) -> bool:
    """One epoch (from the resumed batch when it is the position's): its steps, then its dev scores and epoch
    checkpoint. False when max_steps stopped it before its end (no dev scores, no epoch checkpoint)."""
    config, info, position = run.config, run.info, state.position
    start = position.batches_done if epoch == position.epoch else 0
    plan = d.planner.plan(epoch).batches
    state.net.train()
    t_epoch, loss_sum, loss_count, skipped_batches = time.time(), 0.0, 0, 0
    if epoch == position.epoch and start:  # resumed inside this epoch: its train loss so far
        loss_sum, loss_count, skipped_batches = position.loss_sum, position.loss_count, position.skipped_batches
    t_last = t_epoch
    bar = tqdm(
        range(start, len(plan)),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="batch",
        disable=not info.is_main,
        initial=start,
        total=len(plan),
    )
    for b in bar:
        torch.manual_seed(step_seed(config.seed, epoch, b, info.rank))  # dropout
        batch = next(batches)
        if batch.key != (epoch, b):
            raise RuntimeError(f"loader gave batch {batch.key}, expected {(epoch, b)}")
        d.data.report_failures(batch.failures)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "rank %d epoch %d batch %d ids %s",
                info.rank,
                epoch,
                b,
                ",".join(batch.ids) if not batch.empty else "-",
            )
        loss_value, tokens, grad_norm, skipped, distill_value = _train_step(run, d, state, batch, progress.step)
        skipped_batches += skipped
        progress.step += 1
        step = progress.step
        loss_sum += loss_value
        loss_count += 1
        if info.is_main:
            secs = float(batch.lengths.sum()) * config.features.frame_shift_ms / 1000
            now = time.time()
            speed, t_last = secs / max(now - t_last, 1e-9), now  # waiting for the batch included
            progress.audio_total += secs
            lr = state.scheduler.get_last_lr()[0]
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", speed=f"{speed:.0f}x")
            if step % config.log_every_steps == 0 or step == 1:
                logs.metrics.write(
                    {
                        "step": step,
                        "epoch": epoch,
                        "loss": f"{loss_value:.4f}",
                        "loss_per_token": f"{loss_value * max(len(batch.ids), 1) / tokens:.4f}",
                        "lr": f"{lr:.3e}",
                        "grad_norm": f"{float(grad_norm):.3f}",
                        "audio_s_per_s": f"{speed:.1f}",
                        "wall_s": f"{time.time() - progress.t_start:.1f}",
                        "audio_s": f"{progress.audio_total:.1f}",  # audio trained on since (re)start
                        "cpu_s": f"{time.process_time() - progress.cpu_start:.1f}",  # this process's CPU time
                        **({"distill": f"{distill_value:.4f}"} if config.distills else {}),
                    }
                )
        if config.max_steps is not None and step >= config.max_steps:
            progress.done = True
        if step % config.checkpoint_every_steps == 0 or (progress.done and b + 1 < len(plan)):
            _save(
                run,
                state,
                f"step-{step:07d}",
                ckpts.Position(step, epoch, b + 1, loss_sum, loss_count, skipped_batches),
            )
        if progress.done:
            break
    bar.close()
    if progress.done and b + 1 < len(plan):
        return False
    epoch_seconds = time.time() - t_epoch
    if info.is_main:
        row = {
            "epoch": epoch + 1,
            "step": progress.step,
            "epoch_seconds": f"{epoch_seconds:.1f}",
            "train_loss": f"{loss_sum / loss_count:.4f}" if loss_count else "",  # "": resumed at the epoch end
            "skipped_batches": skipped_batches,
        }
        if d.dev is not None:
            from asr.evaluate import evaluate_batch

            result = evaluate_batch(
                state.bundle, d.dev.utterances, max_batch_frames=config.data.max_batch_frames, progress=False
            )
            row.update(dev_wer=f"{result.wer:.4f}", dev_cer=f"{result.cer:.4f}")
            logger.info(
                "epoch %d: dev %s (%d utterances); %.0f s",
                epoch + 1,
                _rates(result),
                len(d.dev.utterances),
                epoch_seconds,
            )
        logs.dev.write(row)
        _evaluate_extra_devs(state.bundle, d.extra_devs, logs.sets, epoch=epoch + 1, step=progress.step, config=config)
    _save(run, state, f"epoch-{epoch + 1:03d}", ckpts.Position(progress.step, epoch + 1, 0))
    return True


def _train_step(
    run: _Run, d: _Data, state: _Model, batch, step: int
) -> tuple[float, int, torch.Tensor, int, float]:
    """One optimiser step on ``batch`` (``step``: the steps done before it): (loss, target tokens, gradient norm,
    1 when the batch was skipped (nothing loaded, or a non-finite gradient) else 0, the distillation term before
    its weight: 0 without distillation)."""
    config, device, net = run.config, run.device, state.net
    skipped = 0
    distill = torch.zeros(())
    with state.precision.autocast(device):
        if batch.empty:  # every utterance failed to load: keep DDP ranks in step with a zero loss
            skipped += 1
            loss = sum(p.sum() for p in net.parameters()) * 0.0
            tokens = 1
        else:
            log_probs, out_lengths = net(batch.feats.to(device), batch.lengths.to(device))
            loss = F.ctc_loss(
                log_probs.transpose(0, 1).float(),
                batch.targets.to(device),
                out_lengths,
                batch.target_lengths.to(device),
                blank=d.tokenizer.blank_id,
                reduction="sum",
                zero_infinity=True,
            ) / len(batch.ids)
            tokens = int(batch.target_lengths.sum())
            if config.distills:
                distill, weighted = _distill_term(run, d, state, log_probs, out_lengths, batch)
                loss = loss + weighted
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.optim.grad_clip or float("inf"))
    if not torch.isfinite(grad_norm):
        logger.warning("step %d: non-finite gradient norm, update skipped", step)
        state.optimizer.zero_grad(set_to_none=True)
        skipped += 1
    else:
        state.optimizer.step()
    state.scheduler.step()
    return float(loss.detach()), tokens, grad_norm, skipped, float(distill.detach())


def _distill_term(
    run: _Run, d: _Data, state: _Model, log_probs: torch.Tensor, out_lengths: torch.Tensor, batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(teacher || student) over each utterance's frames (asr.distill.loss), per utterance: (the plain mean, what
    metrics.csv logs; the mean with each utterance's training set's weight, what the loss adds)."""
    from asr.distill.loss import student_targets, utterance_kls

    cfg, store = run.config, d.data.teacher
    weights = cfg.distill_weights
    spf = cfg.features.frame_shift_ms / 1000 * state.model.subsampling_factor
    targets = [
        None
        if t is None
        else student_targets(
            t, int(n), frame_seconds=spf, teacher_frame_seconds=store.frame_seconds, speed=speed,
            delay_frames=cfg.distill.delay_frames, blank=d.tokenizer.blank_id,
        )  # fmt: skip
        for t, n, speed in zip(batch.teacher, out_lengths.tolist(), batch.speeds)
    ]
    kls = utterance_kls(log_probs, targets)[0]
    per_utterance = torch.tensor([weights[s] for s in batch.sources], dtype=kls.dtype, device=kls.device)
    return kls.sum() / len(targets), (per_utterance * kls).sum() / len(targets)


def _finalise(run: _Run, d: _Data, state: _Model) -> Path:
    """final.safetensors: the average of the last epoch checkpoints, or the weights after the last step when
    max_steps stopped the run inside an epoch."""
    ckpt_dir, current = run.ckpt_dir, run.current
    final = run.run_dir / "final.safetensors"
    if run.info.is_main:
        epochs = ckpts.epoch_checkpoints(ckpt_dir)[-run.config.average_last :]
        latest = ckpts.latest_checkpoint(ckpt_dir)
        if epochs and latest is not None and latest.startswith("epoch-"):
            averaged = ckpts.average_checkpoints(epochs, device="cpu")
            save_asr_model(final, averaged, extra={"averaged": [p.name for p in epochs], "train_config": current})
        else:  # stopped by max_steps inside an epoch: the weights after the last step are the model
            state.model.cpu()
            save_asr_model(final, state.bundle, extra={"from": latest, "train_config": current})
        logger.info(
            "final model: %s (failed audio: %d, skipped batches at load: %s)",
            final,
            len(d.data.reported),
            dict(d.data.skipped),
        )
    barrier(run.info)
    return final
