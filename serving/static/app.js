// The page's one job: send audio to POST /v1/transcribe and show the answer or the error.
// `transcribe(blob, filename)` is the entry point any audio source (file, microphone) uses.
"use strict";

const TRANSCRIBE_URL = "/v1/transcribe";
const MODEL_URL = "/v1/model";

const $ = (id) => document.getElementById(id);

function showStatus(message) {
  $("status").textContent = message;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearOutput() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("result").hidden = true;
}

function showResult(answer) {
  $("result-text").textContent = answer.text === "" ? "(no speech recognised)" : answer.text;
  $("result-duration").textContent = `${answer.duration_s.toFixed(2)} s`;
  $("result-time").textContent = `${answer.inference_ms.toFixed(0)} ms`;
  $("result-model").textContent = answer.model;
  $("result").hidden = false;
}

async function transcribe(blob, filename) {
  clearOutput();
  $("submit-button").disabled = true;
  showStatus(`Transcribing ${filename}…`);
  const form = new FormData();
  form.append("audio", blob, filename);
  try {
    const response = await fetch(TRANSCRIBE_URL, { method: "POST", body: form });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok && body) {
      showStatus(`Transcribed ${filename}.`);
      showResult(body);
    } else {
      showStatus(`The server refused ${filename}.`);
      const code = body && body.error ? body.error : response.statusText;
      const detail = body && body.detail ? body.detail : "no details given";
      showError(`Error ${response.status} (${code}): ${detail}`);
    }
  } catch (err) {
    showStatus("The request failed.");
    showError(`Could not reach the server: ${err.message}`);
  } finally {
    $("submit-button").disabled = false;
  }
}

async function loadModelInfo() {
  try {
    const response = await fetch(MODEL_URL);
    const info = await response.json();
    $("model-line").textContent =
      `Model ${info.model} · ${info.sample_rate} Hz · ${info.execution_providers.join(", ")}`;
  } catch {
    $("model-line").textContent = "Model information unavailable.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  loadModelInfo();
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("audio-file").files[0];
    if (!file) {
      showError("Choose a WAV file first.");
      return;
    }
    transcribe(file, file.name);
  });
});
