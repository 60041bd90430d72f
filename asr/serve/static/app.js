// The live transcription page: microphone -> AudioWorklet -> WebSocket (float32 at the AudioContext's rate,
// declared in the start message) -> partial line, finals with times, latency, level.
// The AudioContext runs at the model's rate (from /healthz) when the browser allows it: the browser resamples the
// microphone, and the page sends one model chunk per message (the server decodes whole chunks only, so smaller
// messages add no speed, only per-message work on the server). Where the context keeps another rate, the server
// resamples; its resampler holds back a few ms, so the page then sends 20 ms frames (a chunk-sized message would
// complete its chunk only with the next one). Protocol: docs/protocol.md. No framework. window.transcurrent
// exposes the page's state (tests read it).

const FRAME_MS = 20; // audio per worklet frame (the level meter's pace), and per message when the server resamples
const $ = (id) => document.getElementById(id);

const state = {
  status: "idle",
  finals: [], // final messages, in order
  partial: "",
  latencies: [], // ms, audio sent -> result seen, per result
  errors: [], // error messages from the server (or the page)
  done: null, // the done message
  closeCode: null,
  sentSeconds: 0,
  sampleRate: null,
  messageMs: null, // audio per WebSocket message: the model's chunk, or FRAME_MS when the server resamples
  levelDb: -Infinity,
  peakDb: -Infinity, // loudest frame since Start
};
window.transcurrent = state;

let ws = null;
let ctx = null;
let media = null;
let node = null;
let ready = false;
let queued = []; // frames captured before the server said "ready"
let pending = []; // captured frames not yet sent (they make up one message)
let pendingSamples = 0;
let messageSamples = 0; // samples per message
let capturedSamples = 0; // samples captured since Start
let nextSendAt = 0; // captured samples at which the pending frames go out: the first chunk needs the lookahead too
let sentEnds = []; // seconds of audio sent after each frame
let sentTimes = []; // performance.now() when each frame was sent
let samplesSent = 0;

function setStatus(text, kind) {
  state.status = text;
  $("status").textContent = text;
  document.body.dataset.state = kind || text;
}

function fmt(seconds) {
  return seconds.toFixed(2);
}

async function listMicrophones() {
  const select = $("mic");
  const chosen = select.value;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  select.replaceChildren(new Option("default microphone", ""));
  devices.forEach((d, i) => {
    if (d.deviceId === "default" || d.deviceId === "") return;
    select.add(new Option(d.label || `microphone ${i + 1}`, d.deviceId));
  });
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function send(frame) {
  ws.send(frame.buffer);
  samplesSent += frame.length;
  sentEnds.push(samplesSent / ctx.sampleRate);
  sentTimes.push(performance.now());
  state.sentSeconds = samplesSent / ctx.sampleRate;
  $("sent").textContent = `${state.sentSeconds.toFixed(1)} s`;
}

function showLevel(frame) {
  let sum = 0;
  for (let i = 0; i < frame.length; i++) sum += frame[i] * frame[i];
  const db = 10 * Math.log10(sum / frame.length + 1e-12);
  state.levelDb = db;
  state.peakDb = Math.max(state.peakDb, db);
  $("level-bar").style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
  $("level-db").textContent = db < -99 ? "\u2212\u221e dBFS" : `${db.toFixed(0)} dBFS`;
}

function flush() {
  // the pending frames as one message
  if (pendingSamples === 0) return;
  const message = new Float32Array(pendingSamples);
  let at = 0;
  for (const f of pending) {
    message.set(f, at);
    at += f.length;
  }
  pending = [];
  pendingSamples = 0;
  if (!ready) queued.push(message); // until the server is ready: nothing captured is lost
  else if (ws.readyState === WebSocket.OPEN) send(message);
}

function onFrame(frame) {
  showLevel(frame);
  pending.push(frame);
  pendingSamples += frame.length;
  capturedSamples += frame.length;
  if (capturedSamples >= nextSendAt) {
    flush();
    while (nextSendAt <= capturedSamples) nextSendAt += messageSamples;
  }
}

function noteLatency(decoded) {
  // the first frame whose end reaches the audio this result covers: its send time starts the latency
  let lo = 0;
  let hi = sentEnds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sentEnds[mid] < decoded - 1e-4) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= sentTimes.length) return;
  const ms = performance.now() - sentTimes[lo];
  state.latencies.push(ms);
  $("latency").textContent = `${ms.toFixed(0)} ms`;
  const recent = state.latencies.slice(-50).sort((a, b) => a - b);
  $("latency-median").textContent = `${recent[recent.length >> 1].toFixed(0)} ms`;
}

function renderWords(li, final) {
  if (!final.words || final.words.length === 0) {
    li.append(final.text);
    return;
  }
  final.words.forEach((w, i) => {
    const span = document.createElement("span");
    span.className = w.confidence < 0.5 ? "word low" : "word";
    span.title = `${fmt(w.start)}\u2013${fmt(w.end)} s, confidence ${w.confidence.toFixed(2)}`;
    span.textContent = w.text;
    li.append(span, i + 1 < final.words.length ? " " : "");
  });
}

function onMessage(event) {
  const m = JSON.parse(event.data);
  if (m.type === "ready") {
    ready = true;
    setStatus("listening");
    for (const frame of queued) send(frame);
    queued = [];
  } else if (m.type === "partial") {
    state.partial = m.text;
    $("partial").textContent = m.text;
    noteLatency(m.audio_decoded);
  } else if (m.type === "final") {
    state.finals.push(m);
    state.partial = "";
    $("partial").textContent = "";
    const li = document.createElement("li");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `[${fmt(m.start)}\u2013${fmt(m.end)}]`;
    const endpoint = document.createElement("span");
    endpoint.className = "endpoint";
    endpoint.textContent = m.endpoint.replaceAll("_", " ");
    li.append(time);
    renderWords(li, m);
    li.append(endpoint);
    $("finals").append(li);
    noteLatency(m.audio_decoded);
  } else if (m.type === "error") {
    state.errors.push(m);
    setStatus(`error: ${m.message}`, "error");
  } else if (m.type === "done") {
    state.done = m;
  }
}

async function stopCapture() {
  if (node) node.port.onmessage = null;
  if (ws && ready) flush(); // what was captured goes out before the stop message
  if (media) media.getTracks().forEach((t) => t.stop());
  if (ctx) await ctx.close();
  node = null;
  media = null;
}

async function start() {
  $("start").disabled = true;
  setStatus("starting", "busy");
  Object.assign(state, { finals: [], partial: "", latencies: [], errors: [], done: null, closeCode: null });
  state.peakDb = -Infinity;
  $("finals").replaceChildren();
  $("partial").textContent = "";
  ready = false;
  queued = [];
  pending = [];
  pendingSamples = 0;
  sentEnds = [];
  sentTimes = [];
  samplesSent = 0;
  try {
    const deviceId = $("mic").value;
    media = await navigator.mediaDevices.getUserMedia({
      audio: {
        deviceId: deviceId ? { exact: deviceId } : undefined,
        channelCount: 1,
        echoCancellation: false,
        noiseSuppression: false,
        autoGainControl: false,
      },
    });
    await listMicrophones(); // device names are visible once access is granted
    const health = await (await fetch("/healthz")).json();
    try {
      ctx = new AudioContext({ sampleRate: health.model_sample_rate });
    } catch (err) {
      // a browser that will not run a context at that rate: its own rate, which the server resamples
      console.warn(`AudioContext at ${health.model_sample_rate} Hz refused (${err}); the server resamples`);
      ctx = new AudioContext();
    }
    await ctx.audioWorklet.addModule("/static/worklet.js");
    state.sampleRate = ctx.sampleRate;
    state.messageMs = ctx.sampleRate === health.model_sample_rate ? health.chunk_ms : FRAME_MS;
    messageSamples = Math.round((ctx.sampleRate * state.messageMs) / 1000);
    // one chunk per message: the first also carries the lookahead (chunk k is whole at k chunks + lookahead)
    const leadMs = state.messageMs === health.chunk_ms ? health.lookahead_ms || 0 : 0;
    capturedSamples = 0;
    nextSendAt = messageSamples + Math.round((ctx.sampleRate * leadMs) / 1000);
    $("rate").textContent = `${ctx.sampleRate} Hz, ${state.messageMs} ms messages`;
    node = new AudioWorkletNode(ctx, "capture", {
      processorOptions: { frameSamples: Math.round((ctx.sampleRate * FRAME_MS) / 1000) },
    });
    node.port.onmessage = (e) => onFrame(e.data);
    const mute = ctx.createGain();
    mute.gain.value = 0; // the worklet must be pulled by the graph; nothing is played
    ctx.createMediaStreamSource(media).connect(node).connect(mute).connect(ctx.destination);

    ws = new WebSocket(wsUrl());
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      const startMsg = { type: "start", sample_rate: ctx.sampleRate, format: "f32le" };
      const token = $("token").value.trim();
      if (token) startMsg.token = token;
      ws.send(JSON.stringify(startMsg));
      setStatus("connecting", "busy");
    };
    ws.onmessage = onMessage;
    ws.onclose = async (e) => {
      state.closeCode = e.code;
      await stopCapture();
      if (document.body.dataset.state !== "error") setStatus(e.code === 1000 ? "stopped" : `closed (${e.code})`, "idle");
      $("start").disabled = false;
      $("stop").disabled = true;
    };
    $("stop").disabled = false;
  } catch (err) {
    state.errors.push({ type: "error", code: "page", message: String(err) });
    setStatus(`error: ${err.message || err}`, "error");
    await stopCapture();
    $("start").disabled = false;
  }
}

async function stop() {
  $("stop").disabled = true;
  setStatus("finishing", "busy");
  await stopCapture();
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
}

$("controls").addEventListener("submit", (e) => e.preventDefault());
$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
navigator.mediaDevices.addEventListener("devicechange", listMicrophones);
listMicrophones();
