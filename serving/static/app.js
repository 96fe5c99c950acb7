// The page's one job: send a WAV to POST /v1/transcribe and show the answer or the error.
// Three sources feed `transcribe(blob, name, stem)`: the file picker, drag and drop, the
// microphone. The transcript is one focusable element per word (its time and confidence on
// hover); a word plays the audio that was sent from where it starts. Subtitles come from the
// server (`?format=srt`): the page never writes SRT itself.
// live.js (loaded after this file) reuses `showWords`, `encodeWav` and PCM16_WORKLET_URL.
// No build step and no dependencies: the page must work offline, straight from the server.
"use strict";

const TRANSCRIBE_URL = "/v1/transcribe?words=true";
const SRT_URL = "/v1/transcribe?format=srt";
const MODEL_URL = "/v1/model";
const PCM16_WORKLET_URL = "/static/pcm16-worklet.js";
const WAV_TYPE = "audio/wav";
const DEFAULT_MAX_RECORD_SECONDS = 30; // until /v1/model tells the server's clip limit
const LOW_CONFIDENCE = 0.5; // words the model is less sure of than this are marked

const $ = (id) => document.getElementById(id);

let maxRecordSeconds = DEFAULT_MAX_RECORD_SECONDS;
const sent = { blob: null, stem: "" }; // the audio behind the result shown, for its subtitles

// ---- words --------------------------------------------------------------------------

/** Play `audio` from `seconds`. */
function playFrom(audio, seconds) {
  audio.currentTime = seconds;
  // Refused only without a user gesture (clicks and Enter are gestures): the position is
  // set, and the audio's own controls play it from there.
  audio.play().catch(() => {});
}

function wordElement(word, audio) {
  const span = document.createElement("span");
  span.className = word.confidence < LOW_CONFIDENCE ? "word low-confidence" : "word";
  span.textContent = word.word;
  span.tabIndex = 0;
  span.setAttribute("role", "button");
  span.dataset.start = String(word.start);
  span.dataset.end = String(word.end);
  span.dataset.confidence = String(word.confidence);
  span.title =
    `${word.start.toFixed(2)}–${word.end.toFixed(2)} s · ` +
    `confidence ${(100 * word.confidence).toFixed(0)} %`;
  span.addEventListener("click", () => playFrom(audio, word.start));
  span.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault(); // Space must not scroll the page
    playFrom(audio, word.start);
  });
  return span;
}

/**
 * Show a transcript in `container`: one element per word when the server sent `words`
 * (clicking one plays `audio` from its start), else the plain text. `legend`, which says
 * what the words' marks mean, shows only with words.
 */
function showWords(container, legend, text, words, audio) {
  container.replaceChildren();
  legend.hidden = !words || words.length === 0;
  if (legend.hidden) {
    container.textContent = text; // empty text: CSS shows "(no speech recognised)"
    return;
  }
  words.forEach((word, i) => {
    if (i > 0) container.append(" ");
    container.append(wordElement(word, audio));
  });
}

/** Point `audio` at `blob` (a fresh object URL; the one it had is released). */
function loadAudio(audio, blob) {
  if (audio.src) URL.revokeObjectURL(audio.src);
  audio.src = URL.createObjectURL(blob);
  audio.hidden = false;
}

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
  $("playback").pause();
}

function showResult(answer) {
  showWords($("transcript"), $("legend"), answer.text, answer.words, $("playback"));
  const sure = typeof answer.confidence === "number";
  $("confidence").textContent = sure ? `${(100 * answer.confidence).toFixed(0)} %` : "";
  $("confidence").parentElement.hidden = !sure;
  $("duration").textContent = `${answer.duration_s.toFixed(2)} s`;
  $("inference-ms").textContent = `${answer.inference_ms.toFixed(0)} ms`;
  $("result-model").textContent = answer.model;
  $("result").hidden = false;
}

function setBusy(busy) {
  $("drop-zone").disabled = busy;
  $("record").disabled = busy;
  $("download-srt").disabled = busy;
}

// ---- the API ------------------------------------------------------------------------

/** Send `blob` (called `name` in messages; `stem` names its subtitle file) and show the
 * transcript, with `blob` in the player behind its words. */
async function transcribe(blob, name, stem) {
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
      sent.blob = blob;
      sent.stem = stem;
      loadAudio($("playback"), blob);
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

/** POST the audio behind the result to the server's SRT writer and save `<stem>.srt`. */
async function downloadSrt() {
  if (!sent.blob) return;
  const button = $("download-srt");
  button.disabled = true;
  $("error").hidden = true;
  try {
    const response = await fetch(SRT_URL, {
      method: "POST",
      headers: { "Content-Type": WAV_TYPE },
      body: sent.blob,
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        // not JSON: the status text says what went wrong
      }
      showError(`Subtitles failed: error ${response.status}: ${detail}`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `${sent.stem}.srt`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 0); // after the download has taken the blob
  } catch (err) {
    showError(`Could not reach the server for subtitles: ${err.message}`);
  } finally {
    button.disabled = false;
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
  transcribe(file, file.name, file.name.replace(/\.[^.]*$/, "") || "audio");
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

/** 16-bit PCM frames (Int16Array, what PCM16_WORKLET_URL posts) -> a mono WAV blob at
 * `rate` Hz. */
function encodeWav(frames, rate) {
  const n = frames.reduce((total, frame) => total + frame.length, 0);
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
  // Int16Array uses the platform's byte order: little-endian, as WAV wants, wherever
  // browsers run (x86, ARM).
  const samples = new Int16Array(buffer, 44, n);
  let offset = 0;
  for (const frame of frames) {
    samples.set(frame, offset);
    offset += frame.length;
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
  frames: [], // Int16Array PCM, as recorded
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
    await recorder.context.audioWorklet.addModule(PCM16_WORKLET_URL);
    const source = recorder.context.createMediaStreamSource(recorder.stream);
    const capture = new AudioWorkletNode(recorder.context, "pcm16-processor");
    const mute = recorder.context.createGain();
    mute.gain.value = 0; // keep the graph pulled without playing the microphone back
    recorder.frames = [];
    capture.port.onmessage = (event) => recorder.frames.push(new Int16Array(event.data));
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
  if (recorder.frames.length === 0) {
    $("record").disabled = false;
    $("drop-zone").disabled = false;
    setState("error", "Nothing was recorded.");
    showError("The microphone delivered no audio. Check the input device and try again.");
    return;
  }
  await transcribe(encodeWav(recorder.frames, rate), "the recording", "recording");
  recorder.frames = [];
}

// ---- start --------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  loadModelInfo();
  setUpFileInput();
  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", stopRecording);
  $("download-srt").addEventListener("click", downloadSrt);
  for (const threshold of document.querySelectorAll(".legend .threshold")) {
    threshold.textContent = `${(100 * LOW_CONFIDENCE).toFixed(0)} %`;
  }
});
