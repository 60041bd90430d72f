"""``asr serve`` and ``asr stream-client`` as commands: SIGTERM finishes every stream with a final result before
the server exits; the client prints what ``asr transcribe --stream`` prints for the same file."""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import soundfile as sf

from asr.cli import main
from asr.pipeline import save_asr_model
from asr.serve import protocol as proto
from asr.serve.client import stream_audio
from asr.serve.config import ServeConfig
from tests.asr.live.conftest import SAMPLE_RATE
from tests.asr.serve.conftest import TEST_CONFIG, WORDS, running_server

REPO = Path(__file__).resolve().parents[3]


def test_sigterm_finishes_every_stream_with_a_final_result(band_model, speech, tmp_path):
    ckpt = save_asr_model(tmp_path / "band.safetensors", band_model)
    proc = subprocess.Popen(
        [sys.executable, "-m", "asr.cli", "serve", "--model", str(ckpt), "--no-lm", "--port", "0", "--device", "cpu"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    threading.Thread(target=lambda: [log.append(line) for line in proc.stderr], daemon=True).start()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url = lines.get(timeout=60).strip()
        assert url.startswith("listening on http://127.0.0.1:"), (url, log)
        ws = "ws" + url.removeprefix("listening on http")[0:] + "ws"

        async def clients():
            jobs = [asyncio.create_task(stream_audio(ws, speech, SAMPLE_RATE, frame_ms=20)) for _ in range(3)]
            await asyncio.sleep(3.4)  # CAB is final; DAD is being spoken
            proc.send_signal(signal.SIGTERM)
            return await asyncio.gather(*jobs)

        outs = asyncio.run(clients())
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    for out in outs:
        assert out.close_code == proto.CLOSE_GOING_AWAY and not out.errors
        assert out.done["reason"] == "server_shutdown" and 3.0 < out.done["audio_received"] < 4.5
        texts = [f["text"] for f in out.finals]
        assert texts[0] == "CAB" and out.finals[0]["endpoint"] == "silence_after_speech"
        # the word being spoken when the server stopped: finished as a final, not lost
        assert len(texts) == 2 and texts[1] and "DAD".startswith(texts[1]), texts
        assert out.finals[1]["endpoint"] == "input_finished"
        assert out.seconds_sent < len(speech) / SAMPLE_RATE  # the clients stopped sending when the server closed
    assert any("finishing 3 stream(s) before shutting down" in line for line in log), log


def test_stream_client_prints_what_transcribe_stream_prints(band_model, speech, tmp_path, capsys):
    ckpt = save_asr_model(tmp_path / "band.safetensors", band_model)
    wav = tmp_path / "words.wav"
    sf.write(wav, speech, SAMPLE_RATE, subtype="PCM_16")
    assert main(["transcribe", "--stream", "--no-lm", "--model", str(ckpt), str(wav)]) == 0
    expected = capsys.readouterr().out
    assert expected.split() == WORDS
    with running_server(band_model) as server:
        assert main(["stream-client", str(wav), "--url", server.ws_url, "--fast"]) == 0
        printed = capsys.readouterr()
        assert main(["stream-client", str(wav), "--url", server.ws_url, "--fast", "--json", "--frame-ms", "50"]) == 0
        as_json = capsys.readouterr().out
    assert printed.out == expected
    assert "3 final(s)" in printed.err and "close code 1000" in printed.err
    kinds = [line.split('"type": "')[1].split('"')[0] for line in as_json.splitlines()]
    assert kinds[0] == "ready" and kinds[-1] == "done" and kinds.count("final") == 3


def test_stream_client_reports_refusals(band_model, speech, tmp_path, capsys):
    wav = tmp_path / "words.wav"
    sf.write(wav, speech[:SAMPLE_RATE], SAMPLE_RATE, subtype="PCM_16")
    token = tmp_path / "token.txt"
    token.write_text("right\n")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("wrong")
    with running_server(band_model, ServeConfig(**{**TEST_CONFIG.__dict__, "token": "right"})) as server:
        assert main(["stream-client", str(wav), "--url", server.ws_url, "--fast"]) == 1
        assert "server error unauthorized" in capsys.readouterr().err
        assert main(["stream-client", str(wav), "--url", server.ws_url, "--fast", "--token-file", str(wrong)]) == 2
        assert "401" in capsys.readouterr().err
        assert main(["stream-client", str(wav), "--url", server.ws_url, "--fast", "--token-file", str(token)]) == 0
        port = server.url.rsplit(":", 1)[1].strip("/")
    time.sleep(0.2)
    assert main(["stream-client", str(wav), "--url", f"ws://127.0.0.1:{port}/ws"]) == 2  # nobody listens now
    assert "cannot stream to" in capsys.readouterr().err
    assert main(["stream-client", str(tmp_path / "missing.wav")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_refuses_bad_settings(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["serve", "--max-streams", "0"]) == 2
    assert "max_streams" in capsys.readouterr().err
    assert main(["serve", "--token-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["serve", "--token-file", str(tmp_path / "nope.txt")]) == 2
    assert "No such file" in capsys.readouterr().err
