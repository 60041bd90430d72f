"""The model's fast inference form: its streaming step packed per layer (one module per layer kind), beside
the plain reference form ``CTCModel.step``. See :mod:`asr.model.inference.step`."""

from asr.model.inference.step import STEP_KERNELS, PackedStep

__all__ = ["STEP_KERNELS", "PackedStep"]
