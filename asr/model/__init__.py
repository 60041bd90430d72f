"""The acoustic model: causal conv subsampling, linear (or softmax) attention blocks, CTC head.

Every layer has ``forward`` (whole utterances) and ``step(chunk, state) -> (y, state)`` (streaming) side by
side, with typed, batch-first, immutable states; ``stack_states`` / ``unstack_state`` batch and unbatch them.
The modules' ``step`` is the plain reference form; ``PackedStep`` (asr.model.inference, packed per layer) is the
fast form for inference, on the same states.
"""

from asr.model.attention import LinearAttention, LinearAttentionState, SoftmaxAttention, SoftmaxAttentionState
from asr.model.blocks import BlockState, EncoderBlock, FeedForward
from asr.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from asr.model.config import ModelConfig
from asr.model.conv_module import ConvModule, ConvState
from asr.model.ctc import CTCModel
from asr.model.encoder import Encoder, EncoderState, stack_states, unstack_state
from asr.model.inference import PackedStep
from asr.model.subsampling import CausalConvSubsampling, SubsamplingState

__all__ = [
    "BlockState",
    "CTCModel",
    "CausalConvSubsampling",
    "Checkpoint",
    "ConvModule",
    "ConvState",
    "Encoder",
    "EncoderBlock",
    "EncoderState",
    "FeedForward",
    "LinearAttention",
    "LinearAttentionState",
    "ModelConfig",
    "PackedStep",
    "SoftmaxAttention",
    "SoftmaxAttentionState",
    "SubsamplingState",
    "load_checkpoint",
    "save_checkpoint",
    "stack_states",
    "unstack_state",
]
