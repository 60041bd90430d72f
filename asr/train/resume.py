"""Which configuration changes a resumed run accepts: what the run's config.yaml saved must match the recipe and
overrides it is resumed with, except the fields that do not change what is computed."""

from __future__ import annotations

import yaml

from asr.configs import config_to_dict
from asr.train.config import ExtraDevConfig, ExtraTrainConfig, TrainConfig

__all__ = ["check_resume_config"]

# Fields that may differ between a run and its resumption (everything else must match).
_RESUMABLE_CHANGES = {
    "epochs",
    "max_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "log_every_steps",
    "data.num_workers",  # where batches are built does not change them
    "data.allow_pipes",  # (a run whose sets hold no pipes is the same either way; one that does needs it)
    "data.prefetch_batches",
    "num_threads",  # a run paused on a busy machine resumes with more or fewer threads: the same computation
}
# Lists of sub-configs, compared item by item (a key an item of the run's config.yaml lacks matches its default).
_LIST_ITEMS = {"data.extra_train": ExtraTrainConfig, "data.extra_dev": ExtraDevConfig}


def _dict_lists(*values) -> bool:
    return all(isinstance(v, list) and all(isinstance(x, dict) for x in v) for v in values)


def check_resume_config(saved: dict, current: dict) -> None:
    """Refuse a resume whose configuration differs from the run's. A key the run's config.yaml lacks (a run
    started before the key existed) matches when the current value is the key's default."""
    diffs = []
    defaults = yaml.safe_load(yaml.safe_dump(config_to_dict(TrainConfig()), sort_keys=False))

    def walk(a, b, d, prefix=""):
        for key in sorted(set(a) | set(b)):
            va, vb, vd = a.get(key), b.get(key), (d or {}).get(key)
            if key not in a and vb == vd:
                continue
            if isinstance(va, dict) and isinstance(vb, dict):
                walk(va, vb, vd if isinstance(vd, dict) else {}, f"{prefix}{key}.")
            elif f"{prefix}{key}" in _LIST_ITEMS and _dict_lists(va, vb) and len(va) == len(vb):
                item = config_to_dict(_LIST_ITEMS[f"{prefix}{key}"]())  # the defaults of an item's keys
                for k, (ia, ib) in enumerate(zip(va, vb)):
                    walk(ia, ib, item, f"{prefix}{key}[{k}].")
            elif va != vb and f"{prefix}{key}" not in _RESUMABLE_CHANGES:
                diffs.append(f"{prefix}{key}: run has {va!r}, now {vb!r}")

    walk(saved, current, defaults)
    if diffs:
        raise ValueError("cannot resume with a different configuration:\n  " + "\n  ".join(diffs))
