"""The training loop: one code path for every recipe, on one CPU or many GPUs (torchrun + DDP). What a run prepares
before it (the checked configuration, the data, the model and its optimiser) is in asr.train.setup.

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
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from asr.audio import allowing_pipes
from asr.pipeline import save_asr_model
from asr.train import checkpoints as ckpts
from asr.train.config import TrainConfig
from asr.train.data import BatchSource, batch_stream, step_seed
from asr.train.distributed import DistInfo, barrier, cleanup, init_distributed
from asr.train.setup import _Data, _Model, _prepare_data, _prepare_model, _prepare_run, _Run, load_train_config

__all__ = ["load_train_config", "train"]

logger = logging.getLogger(__name__)


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
