"""``asr serve``: live transcription over WebSockets, every connected stream batched through one Recognizer.

engine.py    the batching loop: sessions, one worker thread stepping the recognizer, per-client outboxes
app.py       aiohttp routes (/, /ws, /healthz, /metrics), the WebSocket handler and its limits, shutdown
protocol.py  message parsing and building (docs/protocol.md describes the protocol for client writers)
client.py    a Python client (``asr stream-client``, tools/bench_serve.py, the tests)
metrics.py   Prometheus text metrics
config.py    ServeConfig: where it listens and every limit
browser.py   the page in headless Chromium with a fake microphone (tests, tools/serve_screenshot.py)
static/      the browser page (getUserMedia + AudioWorklet; no framework)
"""

from asr.serve.config import ServeConfig

__all__ = ["ServeConfig"]
