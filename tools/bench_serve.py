#!/usr/bin/env python
"""Load benchmark of ``asr serve``: simulated clients on loopback sending real speech in real time.

For each level of N clients (``--clients 1,16,48``) a fresh ``asr serve`` (the bundled model decoded greedily,
``--no-lm``, like the Recognizer's own figure beside it; one torch thread; its own process) gets N WebSocket
clients from this process, each streaming a different stretch of real speech (pocketsphinx-testdata's LibriVox
files, looped) at the audio's own pace for ``--seconds``, starting at random moments within the first second, in
messages of one model chunk each (what ``asr stream-client`` and the page send at the model's rate; ``--frame-ms``
for other sizes). Measured after ``--warmup`` seconds:

- partial latency: from sending the audio a partial's text covers (its ``audio_decoded``: the last sample of
  the chunk just decoded) to receiving the partial, p50 / p95 / p99 over all clients; add the chunk duration
  for the wait of the chunk's first sample;
- streams sustained at real time: clients whose latency never exceeded ``--max-latency`` after the warm-up
  and whose stream ended normally;
- CPU: the server process's (user + system, from /proc) and this process's (the clients), in cores;
- server streams per core = stream-seconds of audio decoded (its chunk counter) per second of the server's CPU
  time, beside the Recognizer's own streams per core measured here just before (N streams stepped together in
  one thread, 160 ms chunks, samples -> text, thread CPU time); and the audio decoded per stream per second
  (1.0: the server kept real time);
- the server's step time and streams per step (/metrics).

``--soak``: instead, clients connect and leave in every way (stop, close without stop, a TCP cut mid-stream,
a stall until the idle timeout) for ``--seconds``; the server's resident memory and open streams are sampled
every ``--soak-every`` seconds; exit status 1 if a stream is left open or memory grew by more than
``--max-growth-mib`` after the first sample.

    python tools/bench_serve.py --clients 1,16,48 --seconds 40 --out runs/serve/bench
    python tools/bench_serve.py --soak --seconds 600 --clients 12 --out runs/serve/soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _bench_common as bc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHUNK_MS = 160


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 16, 24])
    p.add_argument("--seconds", type=float, default=40.0, help="per level (or the whole soak)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds at the start of a level left out")
    p.add_argument("--frame-ms", type=float, default=None,
                   help="audio per client message (default: one model chunk, as asr.serve.client sends)")
    p.add_argument("--max-latency", type=float, default=1.0, help="a sustained stream's worst partial latency (s)")
    p.add_argument("--batch-window-ms", type=float, help="asr serve --batch-window-ms (default: the server's)")
    p.add_argument("--device", default="cpu", help="asr serve --device")
    p.add_argument("--server-threads", type=int, default=1, help="asr serve --threads")
    p.add_argument("--ref-seconds", type=float, default=10.0, help="audio per stream for the Recognizer's figure")
    p.add_argument("--soak", action="store_true", help="connect/leave churn instead of the load levels")
    p.add_argument("--soak-every", type=float, default=30.0, help="soak: sampling period (s)")
    p.add_argument("--max-growth-mib", type=float, default=64.0, help="soak: allowed resident memory growth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/bench_serve"), help="output folder")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ the server


class Server:
    """``asr serve`` in its own process on a free loopback port."""

    def __init__(self, args: argparse.Namespace, *, max_streams: int, extra: tuple[str, ...] = ()) -> None:
        cmd = [
            sys.executable, "-m", "asr.cli", "serve", "--port", "0", "--device", args.device,
            "--threads", str(args.server_threads), "--max-streams", str(max_streams),
            *extra,
        ]  # fmt: skip
        if args.batch_window_ms is not None:
            cmd += ["--batch-window-ms", str(args.batch_window_ms)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.server_threads), "OMP_WAIT_POLICY": "PASSIVE"}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.log.append(x) for x in self.proc.stderr], daemon=True).start()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            self.stop()
            raise SystemExit("asr serve did not start:\n" + "".join(self.log)) from None
        if not first.startswith("listening on "):
            self.stop()
            raise SystemExit(f"asr serve said {first!r}:\n" + "".join(self.log))
        self.url = first.split()[-1]
        self.ws_url = "ws" + self.url[4:] + "ws"

    @staticmethod
    def _cpu(stat: str) -> float:
        """utime + stime of a /proc stat file, in seconds."""
        with open(stat) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        return self._cpu(f"/proc/{self.proc.pid}/stat")

    def loop_cpu_seconds(self) -> float:
        """CPU time of the server's main thread, where its event loop runs (the rest: the step worker, torch)."""
        return self._cpu(f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    async def metrics(self) -> dict[str, float]:
        import aiohttp

        from asr.serve.metrics import parse_metrics

        async with aiohttp.ClientSession() as http, http.get(self.url + "metrics") as r:
            return parse_metrics(await r.text())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the graceful path
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# ------------------------------------------------------------------------------------------- the reference


def recognizer_streams_per_core(audio: np.ndarray, n: int, seconds: float, seed: int) -> dict[str, Any]:
    """The Recognizer alone: n streams fed 160 ms chunks of real speech and decoded together in this thread."""
    import torch

    from asr.pipeline import load_asr_model, resolve_model_path
    from asr.streaming.feed import recognizer_config
    from asr.streaming.recognizer import Recognizer

    torch.set_num_threads(1)
    bundle = load_asr_model(resolve_model_path(None))
    recognizer = Recognizer(bundle, device="cpu", config=recognizer_config(bundle, CHUNK_MS))
    rng = np.random.default_rng(seed)
    step = 16000 * CHUNK_MS // 1000
    offsets = rng.integers(0, len(audio), n)
    looped = np.concatenate([audio, audio])
    streams = [recognizer.create_stream() for _ in range(n)]
    n_chunks = int(seconds * 1000 / CHUNK_MS)
    cpu = 0.0
    clock = bc.Clock(torch.device("cpu"))
    for c in range(n_chunks + 3):
        with clock:
            for s, off in zip(streams, offsets):
                at = (off + c * step) % len(audio)
                s.accept_waveform(looped[at : at + step], 16000)
            recognizer.decode(streams)
        if c >= 3:  # the first steps build the batch state
            cpu += clock.cpu
    for s in streams:
        recognizer.close_stream(s)
    audio_s = n * n_chunks * CHUNK_MS / 1000
    return {"streams": n, "audio_seconds": audio_s, "cpu_seconds": cpu, "streams_per_core": audio_s / cpu}


# ------------------------------------------------------------------------------------------------ the load


async def run_level(args: argparse.Namespace, server: Server, audio: np.ndarray, n: int) -> dict[str, Any]:
    import aiohttp

    from asr.serve.client import percentiles, stream_audio

    rng = np.random.default_rng(args.seed + n)
    length = int(args.seconds * 16000)
    looped = np.resize(audio, len(audio) + length)

    async def client(i: int, http: aiohttp.ClientSession):
        await asyncio.sleep(float(rng.uniform(0, 1.0)))
        at = int(rng.integers(0, len(audio)))
        return await stream_audio(server.ws_url, looped[at : at + length], 16000, frame_ms=args.frame_ms, http=http)

    async def meter() -> dict[str, float]:
        await asyncio.sleep(args.warmup + 1.0)
        t0, s0, c0, l0 = time.monotonic(), server.cpu_seconds(), time.process_time(), server.loop_cpu_seconds()
        k0 = (await server.metrics())["transcurrent_chunks_total"]
        await asyncio.sleep(args.seconds - args.warmup - 1.0)
        wall = time.monotonic() - t0
        cpu = server.cpu_seconds() - s0
        loop_cpu = server.loop_cpu_seconds() - l0
        decoded = ((await server.metrics())["transcurrent_chunks_total"] - k0) * CHUNK_MS / 1000  # stream-seconds
        return {
            "wall_s": wall,
            "server_cores": cpu / wall,
            "server_loop_cores": loop_cpu / wall,  # the event loop's thread; the rest is the step worker (and torch)
            "client_cores": (time.process_time() - c0) / wall,
            "decoded_realtime": decoded / wall / n,  # audio decoded per second per stream: 1.0 keeps real time
            "server_streams_per_core": decoded / cpu if cpu > 0 else float("nan"),
        }

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        meter_task = asyncio.create_task(meter())
        outs = await asyncio.gather(*(client(i, http) for i in range(n)), return_exceptions=True)
        cpu = await meter_task
        metrics = await server.metrics()
    failed = [repr(o) for o in outs if isinstance(o, BaseException)]
    outs = [o for o in outs if not isinstance(o, BaseException)]
    latencies, sustained = [], 0
    for o in outs:
        lat = [x for x, at in zip(o.latencies, o.latency_at) if at >= args.warmup]
        latencies += lat
        if lat and max(lat) <= args.max_latency and o.done is not None and not o.errors:
            sustained += 1
    return {
        "clients": n,
        "frame_ms": sorted({o.frame_ms for o in outs if o.frame_ms is not None}),
        "failed": failed[:5],
        "sustained": sustained,
        "latency_s": percentiles(latencies),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "partials": len(latencies),
        **cpu,
        "step_s": {q: metrics.get(f'transcurrent_step_seconds{{quantile="{q}"}}') for q in ("0.5", "0.95", "0.99")},
        "streams_per_step": {
            q: metrics.get(f'transcurrent_step_streams{{quantile="{q}"}}') for q in ("0.5", "0.95", "0.99")
        },
        "errors": {k: v for k, v in metrics.items() if k.startswith("transcurrent_stream_errors_total") and v},
    }


def run_levels(args: argparse.Namespace) -> dict[str, Any]:
    from bench.streaming_rtf import load_speech

    audio, files = load_speech(None)
    results: dict[str, Any] = {"levels": [], "speech_files": files, "args": vars(args) | {"out": str(args.out)}}
    for n in args.clients:
        t0 = time.monotonic()
        ref = recognizer_streams_per_core(audio, n, args.ref_seconds, args.seed)
        print(f"[{n} clients] Recognizer alone: {ref['streams_per_core']:.0f} streams per core", flush=True)
        server = Server(args, max_streams=n + 8, extra=("--no-lm",))
        try:
            level = asyncio.run(run_level(args, server, audio, n))
        finally:
            code = server.stop()
        level["recognizer"] = ref
        level["ratio_to_recognizer"] = level["server_streams_per_core"] / ref["streams_per_core"]
        level["server_exit_code"] = code
        results["levels"].append(level)
        lat = level["latency_s"]
        print(
            f"[{n} clients] sustained {level['sustained']}/{n}, latency p50/p95/p99 {lat['p50'] * 1e3:.0f}/"
            f"{lat['p95'] * 1e3:.0f}/{lat['p99'] * 1e3:.0f} ms, decoded {level['decoded_realtime']:.2f}x real time, "
            f"server {level['server_cores']:.2f} cores (event loop {level['server_loop_cores']:.2f}) "
            f"({level['server_streams_per_core']:.0f} streams per core, {level['ratio_to_recognizer']:.2f} of the "
            f"Recognizer's), clients {level['client_cores']:.2f} cores ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
    return results


def table(results: dict[str, Any], *, markdown: bool) -> str:
    header = [
        "clients", "sustained", "decoded / real time", "partial latency p50 / p95 / p99",
        "server CPU (cores): all / event loop", "server streams/core",
        "Recognizer streams/core", "ratio", "step p50 / p95", "streams per step p50 / p95", "clients' CPU",
    ]  # fmt: skip
    rows = []
    for lv in results["levels"]:
        lat, st, sp = lv["latency_s"], lv["step_s"], lv["streams_per_step"]
        rows.append(
            [
                str(lv["clients"]),
                f"{lv['sustained']}/{lv['clients']}",
                f"{lv['decoded_realtime']:.2f}",
                " / ".join(f"{lat[k] * 1e3:.0f}" for k in ("p50", "p95", "p99")) + " ms",
                f"{lv['server_cores']:.2f} / {lv.get('server_loop_cores', float('nan')):.2f}",
                f"{lv['server_streams_per_core']:.0f}",
                f"{lv['recognizer']['streams_per_core']:.0f}",
                f"{lv['ratio_to_recognizer']:.2f}",
                f"{st['0.5'] * 1e3:.1f} / {st['0.95'] * 1e3:.1f} ms",
                f"{sp['0.5']:.0f} / {sp['0.95']:.0f}",
                f"{lv['client_cores']:.2f}",
            ]
        )
    return bc.render_table(header, rows, markdown=markdown)


# ------------------------------------------------------------------------------------------------ the soak


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    from asr.audio import read_audio
    from asr.serve.client import churn

    clip, rate = read_audio(REPO / "asr/assets/audio/real/goforward.flac")
    server = Server(args, max_streams=args.clients[-1] + 8, extra=("--idle-timeout", "2", "--no-lm"))
    samples, counts = [], {}
    try:
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            span = min(args.soak_every, args.seconds - (time.monotonic() - start))
            seed = args.seed + len(samples)  # each span its own sequence of endings and clips
            got = asyncio.run(
                churn(server.ws_url, clip.numpy(), rate, seconds=span, clients=args.clients[-1], seed=seed)
            )
            for k, v in got.items():
                counts[k] = counts.get(k, 0) + v
            time.sleep(3.0)  # stalled clients' idle timeouts and vanished ones' closes complete
            m = asyncio.run(server.metrics())
            samples.append(
                {
                    "t_s": round(time.monotonic() - start, 1),
                    "streams_opened": m["transcurrent_streams_opened_total"],
                    "streams_active": m["transcurrent_streams_active"],
                    "rss_mib": server.rss_bytes() / 2**20,
                }
            )
            print(json.dumps(samples[-1] | {"endings": counts}), flush=True)
    finally:
        code = server.stop()
    growth = samples[-1]["rss_mib"] - samples[0]["rss_mib"]
    leaked = samples[-1]["streams_active"]
    return {
        "samples": samples,
        "endings": counts,
        "rss_growth_mib": growth,
        "streams_left_open": leaked,
        "server_exit_code": code,
        "ok": leaked == 0 and growth <= args.max_growth_mib and counts.get("failed", 0) == 0 and code == 0,
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    info = bc.machine_info(torch.device("cpu"))
    if args.soak:
        results = {"machine": info, "soak": run_soak(args)}
        bc.write_json(args.out / "soak.json", results)
        soak = results["soak"]
        print(
            f"soak: {sum(soak['endings'].values())} streams {soak['endings']}, resident memory growth "
            f"{soak['rss_growth_mib']:+.1f} MiB, {soak['streams_left_open']} left open: "
            f"{'ok' if soak['ok'] else 'FAILED'}"
        )
        return 0 if soak["ok"] else 1
    results = run_levels(args)
    results["machine"] = info
    bc.write_json(args.out / "bench_serve.json", results)
    (args.out / "bench_serve.md").write_text(table(results, markdown=True) + "\n")
    print(table(results, markdown=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
