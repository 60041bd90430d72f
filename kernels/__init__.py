"""Kernels for causal linear attention, and small convolution ops, a few-row matrix product and a whole pre-norm
encoder block's step in C (``kernels.conv``, ``kernels.gemm``, ``kernels.block``) for streaming steps. No speech
knowledge lives here.

The non-causal form is exported as ``noncausal_linear_attention`` (it is ``linear_attention`` in
``kernels.linear_attention.noncausal``): binding the name ``linear_attention`` here would shadow the
``kernels.linear_attention`` subpackage and break ``import kernels.linear_attention.<form> as m``.
"""

from kernels.feature_maps import (
    FEATURE_MAPS,
    EluPlusOne,
    PositiveRandomFeatures,
    ReLUFeatures,
    elu_plus_one,
    elu_plus_one_reference,
    get_feature_map,
    positive_random_features,
    relu,
)
from kernels.linear_attention import (
    BACKENDS,
    LinearAttentionState,
    available_backends,
    causal_linear_attention,
)
from kernels.linear_attention.noncausal import linear_attention as noncausal_linear_attention
from kernels.linear_attention.recurrent import recurrent_step

__all__ = [
    "BACKENDS",
    "FEATURE_MAPS",
    "EluPlusOne",
    "LinearAttentionState",
    "PositiveRandomFeatures",
    "ReLUFeatures",
    "available_backends",
    "causal_linear_attention",
    "elu_plus_one",
    "elu_plus_one_reference",
    "get_feature_map",
    "noncausal_linear_attention",
    "positive_random_features",
    "recurrent_step",
    "relu",
]
