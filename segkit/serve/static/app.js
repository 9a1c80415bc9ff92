// segkit's Try-it page: plain browser JavaScript, no build step and nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: null, file: null, busy: false };

// ---- model and effect choice --------------------------------------------------------------------------------------

async function loadModels() {
  const response = await fetch("/v1/models");
  state.models = await response.json();
  const select = $("model");
  select.innerHTML = "";
  for (const m of state.models.models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = `${m.name} (${m.input.width}x${m.input.height})`;
    select.append(option);
  }
  pickDefaultModel();
}

function pickDefaultModel() {
  if (!state.models) return;
  const effect = $("effect").value;
  $("model").value = state.models.defaults[effect] || state.models.models[0].name;
}

function showOptions() {
  const effect = $("effect").value;
  for (const label of document.querySelectorAll(".opt")) {
    label.hidden = !label.dataset.for.split(" ").includes(effect);
  }
}

function effectParams(effect) {
  const p = new URLSearchParams({ model: $("model").value });
  const refine = $("refine").value;
  if (["blur", "replace", "cutout", "recolor"].includes(effect) && refine !== "none") p.set("refine", refine);
  if (effect === "blur") p.set("strength", $("strength").value);
  if (effect === "replace") p.set("background", $("background").value);
  if (effect === "recolor") {
    p.set("color", $("color").value);
    p.set("strength", $("recolor-strength").value);
  }
  if (effect === "overlay") p.set("alpha", $("alpha").value);
  return p;
}

// ---- image mode ---------------------------------------------------------------------------------------------------

function setStatus(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function drawBlob(canvas, blob) {
  const bitmap = await createImageBitmap(blob);
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx;
}

function showLegend(categories) {
  const list = $("legend");
  list.innerHTML = "";
  for (const c of categories) {
    const item = document.createElement("li");
    const swatch = document.createElement("i");
    swatch.style.background = c.color || "transparent";
    item.append(swatch, `${c.label} ${(100 * c.fraction).toFixed(1)}%`);
    list.append(item);
  }
}

async function run() {
  if (!state.file || state.busy) return;
  state.busy = true;
  const result = $("result");
  result.dataset.state = "busy";
  const effect = $("effect").value;
  setStatus("status", `${effect}…`);
  try {
    const form = new FormData();
    form.append("file", state.file);
    const started = performance.now();
    const response = await fetch(`/v1/${effect}?${effectParams(effect)}`, { method: "POST", body: form });
    if (!response.ok) {
      const body = await response.json().catch(() => ({ detail: response.statusText }));
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      throw new Error(`${response.status}: ${detail}`);
    }
    const categories = JSON.parse(response.headers.get("X-Segkit-Categories") || "[]");
    await drawBlob(result, await response.blob());
    showLegend(categories);
    const model = response.headers.get("X-Segkit-Model");
    const ms = performance.now() - started;
    $("result-caption").textContent = `${effect} · ${model} · ${response.headers.get("X-Segkit-Time-Ms")} ms server`;
    setStatus("status", `done in ${ms.toFixed(0)} ms`);
    result.dataset.effect = effect;
    result.dataset.state = "done";
  } catch (err) {
    setStatus("status", String(err.message || err), true);
    result.dataset.state = "error";
  } finally {
    state.busy = false;
  }
}

async function useFile(file) {
  if (!file) return;
  state.file = file;
  await drawBlob($("source"), file).catch(() => setStatus("status", "the browser cannot show this file", true));
  await run();
}

// ---- camera mode --------------------------------------------------------------------------------------------------

const live = { ws: null, stream: null, timer: null, pending: new Map(), frames: 0, skipped: 0, times: [], lat: [] };

function pack(header, payload) {
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + text.length + payload.byteLength);
  new DataView(out.buffer).setUint32(0, text.length, true);
  out.set(text, 4);
  out.set(new Uint8Array(payload), 4 + text.length);
  return out.buffer;
}

function unpack(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  return [header, new Uint8Array(buffer, 4 + length)];
}

async function startCamera() {
  $("camera-start").disabled = true;
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    setStatus("live-status", `no camera: ${err.message || err}`, true);
    $("camera-start").disabled = false;
    return;
  }
  const video = $("video");
  video.srcObject = live.stream;
  await video.play();
  let effect = $("effect").value;
  if (effect === "segment") effect = "mask";
  const params = effectParams(effect);
  params.set("effect", effect);
  params.set("model", $("model").value);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  live.ws = new WebSocket(`${scheme}://${location.host}/v1/live?${params}`);
  live.ws.binaryType = "arraybuffer";
  live.ws.onmessage = onLiveMessage;
  live.ws.onclose = (e) => { if (live.stream) setStatus("live-status", `closed (${e.code}) ${e.reason}`, e.code !== 1000); };
  live.ws.onopen = () => {
    setStatus("live-status", `streaming: ${effect}`);
    $("camera-stop").disabled = false;
    pump();
  };
}

function stopCamera() {
  clearTimeout(live.timer);
  if (live.ws) live.ws.close(1000, "stopped");
  if (live.stream) for (const track of live.stream.getTracks()) track.stop();
  live.ws = null;
  live.stream = null;
  live.pending.clear();
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  setStatus("live-status", "stopped");
}

const grab = document.createElement("canvas");

function pump() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) return;
  live.timer = setTimeout(pump, 1000 / 30);
  const now = performance.now();
  for (const [ts] of live.pending) if (now - ts > 3000) live.pending.delete(ts); // lost: stop waiting for them
  const video = $("video");
  if (video.readyState < 2 || !video.videoWidth) return;
  if (live.pending.size >= 2) {
    live.skipped += 1;
    $("skipped").textContent = live.skipped;
    return;
  }
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  live.pending.set(now, true);
  grab.toBlob(async (blob) => {
    if (!blob || !live.ws || live.ws.readyState !== WebSocket.OPEN) return;
    live.ws.send(pack({ timestamp: now }, await blob.arrayBuffer()));
  }, "image/jpeg", 0.8);
}

async function onLiveMessage(event) {
  if (typeof event.data === "string") {
    const message = JSON.parse(event.data);
    if (message.type === "error") setStatus("live-status", message.message, true);
    return;
  }
  const [header, payload] = unpack(event.data);
  for (const [ts] of live.pending) if (ts <= header.timestamp) live.pending.delete(ts);
  const now = performance.now();
  live.frames += 1;
  live.times.push(now);
  while (live.times.length && now - live.times[0] > 2000) live.times.shift();
  live.lat.push(now - header.timestamp);
  if (live.lat.length > 30) live.lat.shift();
  const canvas = $("live");
  await drawBlob(canvas, new Blob([payload], { type: header.media_type }));
  canvas.dataset.frames = live.frames;
  const span = live.times.length > 1 ? (live.times[live.times.length - 1] - live.times[0]) / 1000 : 0;
  $("fps").textContent = span > 0 ? ((live.times.length - 1) / span).toFixed(1) : "0.0";
  $("latency").textContent = (live.lat.reduce((a, b) => a + b, 0) / live.lat.length).toFixed(0);
  $("dropped").textContent = header.dropped;
  $("frames").textContent = live.frames;
}

// ---- wiring -------------------------------------------------------------------------------------------------------

$("effect").addEventListener("change", () => { pickDefaultModel(); showOptions(); run(); });
for (const id of ["model", "strength", "background", "color", "recolor-strength", "alpha", "refine"]) {
  $(id).addEventListener("change", run);
}
$("file").addEventListener("change", (e) => useFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  useFile(e.dataTransfer.files[0]);
});
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
showOptions();
loadModels().catch((err) => setStatus("status", `cannot list models: ${err}`, true));
