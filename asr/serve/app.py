"""The HTTP side of ``asr serve``: routes, the WebSocket handler and its limits, startup and graceful shutdown.

Why aiohttp: one small, mature library gives the asyncio HTTP server, WebSockets (with ping/pong, message size
limits and close codes), static files and a WebSocket *client* (``asr stream-client``, tools/bench_serve.py and
the tests use it) without an ASGI server, a framework and a separate WebSocket package to keep in step. The work
here is a few long-lived connections each sending small binary frames, which aiohttp handles on one event loop;
the model step runs in a worker thread (asr/serve/engine.py), so nothing CPU-heavy runs on the loop.

Routes: ``/`` the page (asr/serve/static/), ``/static/*`` its scripts, ``/ws`` the streams (docs/protocol.md),
``/healthz`` JSON status, ``/metrics`` Prometheus text. With a token, ``/ws`` and ``/metrics`` need it.
Bound to loopback (the default), requests must name a loopback host (no DNS rebinding from web pages);
browsers may open ``/ws`` only from the server's own origin or ``allowed_origins``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from asr.serve import protocol as proto
from asr.serve.config import ServeConfig, is_loopback
from asr.serve.engine import OPEN, Engine, Outbox
from asr.serve.metrics import CONTENT_TYPE

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
ENGINE = web.AppKey("engine", Engine)
CONFIG = web.AppKey("config", ServeConfig)
STOPPING = web.AppKey("stopping", asyncio.Event)

#: Content-Security-Policy of the page: its own scripts and styles, WebSockets to anywhere it is told.
PAGE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self'"


class TokenBucket:
    """``rate`` units per second sustained, bursts up to ``capacity``."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self._t = time.monotonic()

    def take(self, amount: float) -> bool:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
        self._t = now
        if amount > self.level:
            return False
        self.level -= amount
        return True


def create_app(engine: Engine, config: ServeConfig) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[ENGINE] = engine
    app[CONFIG] = config
    app[STOPPING] = asyncio.Event()
    app.router.add_get("/", _index)
    app.router.add_get("/ws", _websocket)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_static("/static", STATIC_DIR, show_index=False, follow_symlinks=False)
    return app


@web.middleware
async def _guard(request: web.Request, handler):
    config = request.app[CONFIG]
    if config.loopback and not is_loopback(_host_name(request.host)):
        return web.json_response(
            {"error": "bad_host", "message": "this server is bound to loopback; use a loopback host name"}, status=421
        )
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _host_name(host: str) -> str:
    """The name or address of a Host header, without the port (``[::1]:8000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token_ok(offered: str | None, token: str) -> bool:
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def _index(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(STATIC_DIR / "index.html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


async def _healthz(request: web.Request) -> web.Response:
    engine, config = request.app[ENGINE], request.app[CONFIG]
    stopping = request.app[STOPPING].is_set()
    rec = engine.recognizer
    body = {
        "status": "shutting_down" if stopping else "ok",
        "streams": engine.sessions,
        "max_streams": config.max_streams,
        "device": str(rec.device),
        "model_sample_rate": rec.sample_rate,
        "chunk_ms": config.chunk_ms,
        "lookahead_ms": engine.lookahead_ms,
    }
    return web.json_response(body, status=503 if stopping else 200)


async def _metrics(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if config.token is not None and not _token_ok(_bearer(request), config.token):
        return web.json_response({"error": "unauthorized", "message": "a valid bearer token is required"}, status=401)
    text = request.app[ENGINE].metrics.render()
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def _websocket(request: web.Request) -> web.StreamResponse:
    engine, config = request.app[ENGINE], request.app[CONFIG]
    origin = request.headers.get("Origin")
    if origin is not None and origin not in {f"{request.scheme}://{request.host}", *config.allowed_origins}:
        engine.metrics.refused["bad_origin"] += 1
        return web.json_response(
            {"error": "bad_origin", "message": f"WebSocket from origin {origin!r} not allowed (see --allow-origin)"},
            status=403,
        )
    header_auth = False
    if config.token is not None:
        offered = _bearer(request)
        if offered is not None and not _token_ok(offered, config.token):
            engine.metrics.refused["unauthorized"] += 1
            return web.json_response({"error": "unauthorized", "message": "wrong bearer token"}, status=401)
        header_auth = offered is not None
    # aiohttp itself refuses (close 1009, no message) only what is far over the limit; _Connection checks the limit
    ws = web.WebSocketResponse(
        max_msg_size=4 * config.max_message_bytes, heartbeat=20.0, timeout=config.close_timeout_s
    )
    await ws.prepare(request)
    await _Connection(ws, engine, config).run(header_auth=header_auth)
    return ws


class _Connection:
    """One WebSocket: receives (start, audio, stop) and sends the session's outbox, each in its own task."""

    def __init__(self, ws: web.WebSocketResponse, engine: Engine, config: ServeConfig) -> None:
        self.ws = ws
        self.engine = engine
        self.config = config
        self.outbox = Outbox(config.max_outbox, engine.metrics)
        self.session = None
        self._messages = TokenBucket(config.max_messages_per_s, config.max_messages_per_s)
        self._audio = TokenBucket(config.max_realtime, config.burst_seconds)

    async def run(self, *, header_auth: bool) -> None:
        sender = asyncio.create_task(self._send())
        t0 = time.monotonic()
        try:
            await self._receive(header_auth)
        except proto.ClientError as exc:
            self._fail(exc)
        except asyncio.TimeoutError:
            self._fail(
                proto.ClientError(
                    "idle_timeout", f"nothing received for {self.config.idle_timeout_s:g} s", proto.CLOSE_POLICY
                )
            )
        except BaseException:  # cancelled (aiohttp gave up on this handler) or a bug: never leave the stream open
            if self.session is not None:
                self.engine.abandon(self.session)
            sender.cancel()
            raise
        finally:
            if self.session is None:
                self.outbox.close(proto.CLOSE_NORMAL, "")
        try:  # the stream finishes (a step or two), its last messages go out, the close handshake
            await asyncio.wait_for(asyncio.shield(sender), self.config.shutdown_grace_s + self.config.close_timeout_s)
        except asyncio.TimeoutError:
            logger.warning("stream %s: sender still busy; dropping the connection", self._sid)
            sender.cancel()
            if self.session is not None:
                self.engine.abandon(self.session)
        if self.session is not None:
            s = self.session
            logger.info(
                "stream %d closed (%s): %.1f s of audio in %.1f s",
                s.id,
                s.finish_reason or "client left",
                s.seconds_in,
                time.monotonic() - t0,
            )

    @property
    def _sid(self) -> str:
        return "-" if self.session is None else str(self.session.id)

    async def _receive(self, header_auth: bool) -> None:
        msg = await self._next()
        if msg is None:
            return
        if msg.type == WSMsgType.BINARY:
            raise proto.ClientError(
                "expected_start",
                "the first message must be the JSON start message, got a binary frame",
                proto.CLOSE_UNSUPPORTED,
            )
        start = proto.parse_start(msg.data)
        if self.config.token is not None and not header_auth and not _token_ok(start.token, self.config.token):
            raise proto.ClientError(
                "unauthorized",
                "a valid bearer token is required (an Authorization header, or 'token' in the start message)",
                proto.CLOSE_POLICY,
            )
        session = self.session = self.engine.open(start, self.outbox)
        logger.info("stream %d opened: %d Hz %s", session.id, start.sample_rate, start.format)
        limit = self.config.max_stream_seconds
        while True:
            msg = await self._next()
            if msg is None:  # the client left (or the server closed after finishing the stream)
                if session.state == OPEN:
                    self.engine.abandon(session)
                return
            if msg.type == WSMsgType.TEXT:
                proto.parse_control(msg.data)  # "stop", or a ClientError
                self.engine.finish(session, "stop")
                return
            samples = proto.decode_audio(msg.data, start.format)
            seconds = samples.size / start.sample_rate
            if session.seconds_in + seconds > limit:
                raise proto.ClientError(
                    "max_duration", f"a stream may carry at most {limit:g} s of audio", proto.CLOSE_POLICY
                )
            if not self._audio.take(seconds):
                raise proto.ClientError(
                    "rate_limited",
                    f"audio arrives faster than {self.config.max_realtime:g}x real time (beyond a "
                    f"{self.config.burst_seconds:g} s burst)",
                    proto.CLOSE_POLICY,
                )
            self.engine.feed(session, samples)

    async def _next(self):
        """The next text or binary message within the idle timeout; None when the connection is closing."""
        msg = await self.ws.receive(timeout=self.config.idle_timeout_s)
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            size = len(msg.data) if msg.type == WSMsgType.BINARY else len(msg.data.encode())
            if size > self.config.max_message_bytes:
                raise proto.ClientError(
                    "message_too_big",
                    f"message of {size} bytes exceeds the limit of {self.config.max_message_bytes} bytes",
                    proto.CLOSE_TOO_BIG,
                )
            if not self._messages.take(1.0):
                raise proto.ClientError(
                    "rate_limited",
                    f"more than {self.config.max_messages_per_s:g} messages per second (send larger frames)",
                    proto.CLOSE_POLICY,
                )
            return msg
        if msg.type == WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
            logger.info("stream %s: WebSocket error %s: %s", self._sid, msg.data.code, msg.data)
            if msg.data.code == proto.CLOSE_TOO_BIG:  # far over the limit: aiohttp closed it already
                self.engine.metrics.errors["message_too_big"] += 1
        return None

    def _fail(self, exc: proto.ClientError) -> None:
        logger.info("stream %s: %s: %s", self._sid, exc.code, exc.message)
        self.engine.report_error(self.outbox, exc.code, exc.message)
        if self.session is None:
            self.outbox.close(exc.close_code, exc.code)
        else:
            self.engine.finish(self.session, exc.code, exc.close_code)

    async def _send(self) -> None:
        ws = self.ws
        try:
            while (item := await self.outbox.get()) is not None:
                await ws.send_str(item[1])
                self.engine.metrics.messages_sent += 1
            code, reason = self.outbox.close_with
            await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:120]), self.config.close_timeout_s)
        except (ConnectionError, RuntimeError, asyncio.TimeoutError) as exc:  # the client is gone
            logger.debug("stream %s: send failed: %r", self._sid, exc)


async def run_server(
    engine: Engine,
    config: ServeConfig,
    *,
    on_listening: Callable[[str], object] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then finish every stream with its final result."""
    loop = asyncio.get_running_loop()
    app = create_app(engine, config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    engine.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    stop = stop or asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    logger.info("listening on %s (WebSocket at %s)", url, "ws" + url[4:] + "ws")
    if on_listening is not None:
        on_listening(url)
    try:
        await stop.wait()
        logger.info("shutting down")
        app[STOPPING].set()
        await engine.shutdown(config.shutdown_grace_s)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    logger.info("stopped: %s", json.dumps({"streams_opened": engine.metrics.streams_opened}))
