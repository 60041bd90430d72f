"""Transcurrent: streaming speech recognition with causal linear attention."""

__version__ = "0.1.0"
