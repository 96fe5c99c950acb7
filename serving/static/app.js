// The page's one job: send a WAV to POST /v1/transcribe and show the answer or the error.
// Three sources feed `transcribe(blob, name)`: the file picker, drag and drop, the microphone.
// No build step and no dependencies: the page must work offline, straight from the server.
"use strict";

const TRANSCRIBE_URL = "/v1/transcribe";
const MODEL_URL = "/v1/model";
const WAV_TYPE = "audio/wav";
const DEFAULT_MAX_RECORD_SECONDS = 30; // until /v1/model tells the server's clip limit

const $ = (id) => document.getElementById(id);

let maxRecordSeconds = DEFAULT_MAX_RECORD_SECONDS;

// ---- output -------------------------------------------------------------------------

function setState(state, message) {
  $("output").dataset.state = state; // idle | busy | done | error (tests wait on it)
  $("status").textContent = message;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("output").dataset.state = "error";
}

function clearOutput() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("result").hidden = true;
}

function showResult(answer) {
  $("transcript").textContent = answer.text; // empty text: CSS shows "(no speech recognised)"
  $("duration").textContent = `${answer.duration_s.toFixed(2)} s`;
  $("inference-ms").textContent = `${answer.inference_ms.toFixed(0)} ms`;
  $("result-model").textContent = answer.model;
  $("result").hidden = false;
}

function setBusy(busy) {
  $("drop-zone").disabled = busy;
  $("record").disabled = busy;
}

// ---- the API ------------------------------------------------------------------------

async function transcribe(blob, name) {
  clearOutput();
  setBusy(true);
  setState("busy", `Transcribing ${name}…`);
  try {
    const response = await fetch(TRANSCRIBE_URL, {
      method: "POST",
      headers: { "Content-Type": WAV_TYPE },
      body: blob,
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok && body) {
      showResult(body);
      setState("done", `Transcribed ${name}.`);
    } else {
      const code = body && body.error ? body.error : response.statusText;
      const detail = body && body.detail ? body.detail : "no details given";
      setState("error", `The server refused ${name}.`);
      showError(`Error ${response.status} (${code}): ${detail}`);
    }
  } catch (err) {
    setState("error", "The request failed.");
    showError(`Could not reach the server: ${err.message}`);
  } finally {
    setBusy(false);
  }
}

async function loadModelInfo() {
  try {
    const response = await fetch(MODEL_URL);
    if (!response.ok) throw new Error(response.statusText);
    const info = await response.json();
    const decoder = info.decoder && info.decoder.decoder ? ` · ${info.decoder.decoder} decoder` : "";
    $("model").textContent =
      `Model ${info.name}, version ${info.version} · ${info.sample_rate} Hz · ` +
      `${info.execution_providers.join(", ")}${decoder}`;
    if (info.limits && info.limits.max_audio_seconds) {
      maxRecordSeconds = info.limits.max_audio_seconds;
    }
  } catch {
    $("model").textContent = "Model information unavailable.";
  }
}

// ---- file picker and drag and drop --------------------------------------------------

function sendFile(file) {
  if (!file) return;
  transcribe(file, file.name);
}

function setUpFileInput() {
  const input = $("file");
  const zone = $("drop-zone");
  // A real <button>: Enter and Space click it, and the click opens the picker.
  zone.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    sendFile(input.files[0]);
    input.value = ""; // choosing the same file again sends it again
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (!files || files.length === 0) {
      showError("Drop a WAV file (nothing usable was dropped).");
      return;
    }
    sendFile(files[0]);
  });
  // A file dropped next to the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

// ---- microphone ---------------------------------------------------------------------

// Runs on the audio thread: hands each 128-sample block of channel 0 to the page.
const CAPTURE_WORKLET = `
class CaptureProcessor extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("capture-processor", CaptureProcessor);
`;

/** Float samples in [-1, 1] -> a 16-bit PCM mono WAV blob at `rate` Hz. */
function encodeWav(chunks, rate) {
  const n = chunks.reduce((total, chunk) => total + chunk.length, 0);
  const buffer = new ArrayBuffer(44 + 2 * n);
  const view = new DataView(buffer);
  const text = (offset, s) => {
    for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + 2 * n, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, 2 * n, true);
  let offset = 44;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++) {
      const s = Math.max(-1, Math.min(1, chunk[i]));
      view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      offset += 2;
    }
  }
  return new Blob([buffer], { type: WAV_TYPE });
}

function microphoneProblem(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access was denied. Allow it in the browser's site settings and try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one, or choose a WAV file instead.";
    case "NotReadableError":
      return "The microphone is in use by another application or could not be started.";
    default:
      return `The microphone could not be started: ${err && err.message ? err.message : err}`;
  }
}

const recorder = {
  context: null,
  stream: null,
  chunks: [],
  started: 0,
  timer: null,
};

async function startRecording() {
  clearOutput();
  if (!window.isSecureContext) {
    showError(
      "Recording needs a secure page: open it over https:// or at http://localhost " +
        "(or choose a WAV file instead).",
    );
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
    showError("This browser cannot record audio here. Choose a WAV file instead.");
    return;
  }
  $("record").disabled = true;
  try {
    recorder.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false },
    });
    recorder.context = new AudioContext();
    const url = URL.createObjectURL(new Blob([CAPTURE_WORKLET], { type: "text/javascript" }));
    await recorder.context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    const source = recorder.context.createMediaStreamSource(recorder.stream);
    const capture = new AudioWorkletNode(recorder.context, "capture-processor");
    const mute = recorder.context.createGain();
    mute.gain.value = 0; // keep the graph pulled without playing the microphone back
    recorder.chunks = [];
    capture.port.onmessage = (event) => recorder.chunks.push(event.data);
    source.connect(capture).connect(mute).connect(recorder.context.destination);
  } catch (err) {
    releaseMicrophone();
    $("record").disabled = false;
    setState("error", "Recording did not start.");
    showError(microphoneProblem(err));
    return;
  }
  recorder.started = performance.now();
  recorder.timer = setInterval(tickRecording, 100);
  $("recording").hidden = false;
  $("drop-zone").disabled = true;
  $("stop").disabled = false;
  $("stop").focus();
  setState("busy", "Recording… press Stop when done.");
}

function tickRecording() {
  const seconds = (performance.now() - recorder.started) / 1000;
  $("recording-time").textContent = `${seconds.toFixed(1)} s`;
  if (seconds >= maxRecordSeconds) stopRecording();
}

function releaseMicrophone() {
  clearInterval(recorder.timer);
  recorder.timer = null;
  if (recorder.stream) recorder.stream.getTracks().forEach((track) => track.stop());
  recorder.stream = null;
  const context = recorder.context;
  recorder.context = null;
  return context ? context.close().then(() => context.sampleRate) : Promise.resolve(0);
}

async function stopRecording() {
  if (!recorder.context) return;
  $("stop").disabled = true;
  $("recording").hidden = true;
  const rate = await releaseMicrophone();
  $("record").focus();
  if (recorder.chunks.length === 0) {
    $("record").disabled = false;
    $("drop-zone").disabled = false;
    setState("error", "Nothing was recorded.");
    showError("The microphone delivered no audio. Check the input device and try again.");
    return;
  }
  await transcribe(encodeWav(recorder.chunks, rate), "the recording");
  recorder.chunks = [];
}

// ---- start --------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  loadModelInfo();
  setUpFileInput();
  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", stopRecording);
});
