"""n-gram language models for decoding: training text, building (``asr lm build``), LM folders."""
