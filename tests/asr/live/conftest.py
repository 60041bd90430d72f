"""A hand-set model whose transcript depends only on coarse band energy, and "speech" that exercises it.

The microphone test cannot expect sample-identical audio (PulseAudio resamples 16 kHz -> the device's
44.1 kHz, the stream resamples back, and recording starts at an arbitrary offset), so its model must map
audio that is *nearly* the same to the same text, while still depending on what was said. This one does:

- the front end is the real one (80 log-mel bins, CMVN set so silence is strongly negative);
- the 4x conv subsampling averages 3x3 patches twice (channel 0 only), so each of its 19 frequency outputs is
  a smoothed log energy over ~7 neighbouring mel bins and 7 frames;
- its projection forms, per band k, (mean activation inside band k) - (mean activation elsewhere), and one
  constant coordinate (the "blank" level);
- the single encoder block is the identity (its attention and feed-forward output layers are zero);
- the final LayerNorm is a per-frame increasing affine map of all coordinates (it keeps their order) and the
  CTC head copies coordinate k to letter k, the constant to the blank, every other token far below.

So a frame whose energy sits in band k well above everything else decodes to letter k, any other frame
(silence, broadband clicks) to the blank, and a burst of band-k noise collapses to one letter k. Words are
sequences of bursts in different bands; pauses longer than the endpoint's 0.8 s end a final result. A
wrong sample rate moves the bursts to other bands (other letters); lost or duplicated audio changes
letters or their count; a missing final flush drops the last word.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.features import FbankConfig, GlobalCMVN
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.pipeline import AsrModel
from asr.text.chars import CharTokenizer

#: Bands of the subsampling's 19 frequency outputs (each covers mel bins ~4f .. 4f + 6) -> letters.
BANDS = {"A": (2, 3), "B": (6, 7), "C": (10, 11), "D": (14, 15)}
SAMPLE_RATE = 16000


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def _hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def band_hz(letter: str, features: FbankConfig | None = None) -> tuple[float, float]:
    """The frequency range (Hz) of the mel bins at the centre of ``letter``'s band."""
    features = features or FbankConfig()
    lo, hi = BANDS[letter]
    nyquist = features.sample_rate / 2
    high = features.high_freq if features.high_freq > 0 else nyquist + features.high_freq
    edges = np.linspace(_mel(features.low_freq), _mel(high), features.n_mels + 2)
    centres = _hz(edges[1:-1])  # [n_mels]
    return float(centres[4 * lo + 2]), float(centres[4 * hi + 4])


def make_band_model(*, scale: float = 8.0) -> AsrModel:
    tok = CharTokenizer()
    n_bands = len(BANDS)
    cfg = ModelConfig(
        vocab_size=tok.vocab_size,
        d_model=8,
        num_layers=1,
        num_heads=2,
        ff_dim=8,
        subsampling_channels=2,
        conv_module=False,
        dropout=0.0,
        backend="recurrent",
    )
    model = CTCModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        sub = model.encoder.subsampling
        sub.conv1.weight[0, 0] = 1.0 / 9.0  # channel 0: mean of the 3x3 patch of normalised log-mels
        sub.conv2.weight[0, 0] = 1.0 / 9.0  # channel 0: mean of the 3x3 patch of conv1's channel 0
        f2 = sub.freq2
        proj = torch.zeros(cfg.d_model, sub.channels * f2)  # proj input is channel-major: c * F2 + f
        for k, (lo, hi) in enumerate(BANDS.values()):
            inside = torch.zeros(f2, dtype=torch.bool)
            inside[lo : hi + 1] = True
            proj[k, :f2][inside] = 1.0 / int(inside.sum())
            proj[k, :f2][~inside] = -1.0 / int((~inside).sum())
        sub.proj.weight.copy_(proj)
        sub.proj.bias[n_bands] = 1.0  # the blank level: a band must beat its outside mean by 1
        sub.proj.bias[n_bands + 1 :] = -10.0  # unused coordinates stay lowest
        block = model.encoder.blocks[0]
        for norm in (block.norm_attention, block.norm_ff):
            norm.weight.fill_(1.0)
        model.encoder.final_norm.weight.fill_(1.0)  # attention/ff outputs stay zero: the block is the identity
        head = torch.full((cfg.vocab_size, cfg.d_model), 0.0)
        bias = torch.full((cfg.vocab_size,), -50.0)
        for k, letter in enumerate(BANDS):
            head[tok.encode(letter)[0], k] = scale
            bias[tok.encode(letter)[0]] = 0.0
        head[tok.blank_id, n_bands] = scale
        bias[tok.blank_id] = 0.0
        model.head.weight.copy_(head)
        model.head.bias.copy_(bias)
    # log-mel of digital silence is log(1.2e-7) = -15.9; of the bursts ~ 15 .. 25: centre and scale so that
    # silence is very negative (SiLU -> 0) and the bursts clearly positive.
    cmvn = GlobalCMVN(mean=torch.full((80,), 12.0), std=torch.full((80,), 3.0), count=1)
    return AsrModel(model=model, tokenizer=tok, cmvn=cmvn, features=FbankConfig())


def band_noise(letter: str, seconds: float, *, rng: np.random.Generator, amplitude: float = 0.25) -> np.ndarray:
    """Noise band-limited (FFT mask) to ``letter``'s band, with 20 ms raised-cosine ramps (no clicks)."""
    n = int(seconds * SAMPLE_RATE)
    lo, hi = band_hz(letter)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec[(freqs < lo) | (freqs > hi)] = 0.0
    x = np.fft.irfft(spec, n)
    x = amplitude * x / np.max(np.abs(x))
    ramp = int(0.02 * SAMPLE_RATE)
    env = np.ones(n)
    env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[-ramp:] = env[:ramp][::-1]
    return (x * env).astype(np.float32)


def burst_speech(
    words: list[str], *, seed: int = 0, burst_s: float = 0.25, gap_s: float = 0.15, pause_s: float = 1.2,
    lead_s: float = 0.5,
) -> np.ndarray:
    """Each word a run of bursts (one per letter, ``gap_s`` apart), words ``pause_s`` apart; 16 kHz float."""
    rng = np.random.default_rng(seed)
    silence = lambda s: np.zeros(int(s * SAMPLE_RATE), dtype=np.float32)  # noqa: E731
    parts = [silence(lead_s)]
    for word in words:
        for i, letter in enumerate(word):
            if i:
                parts.append(silence(gap_s))
            parts.append(band_noise(letter, burst_s, rng=rng))
        parts.append(silence(pause_s))
    return np.concatenate(parts)
