// Live transcription: microphone -> AudioWorklet (16 kHz PCM16, 20 ms frames) -> WebSocket
// /v1/stream -> partial text while speaking, the final text with word timings after Stop (the
// `EOS` message). The frames sent are kept: at the end they become a WAV the words play from.
// Separate from app.js (uploads and recordings); uses its `showWords`, `loadAudio`,
// `encodeWav` and PCM16_WORKLET_URL (app.js is loaded first).
"use strict";

const STREAM_PATH = "/v1/stream";
const STREAM_RATE = 16000; // what the streaming model reads; the AudioContext resamples to it

const live = {
  socket: null,
  context: null,
  media: null,
  serverError: null,
  frames: [],
  ended: false, // EOS sent: a frame the worklet still posts is neither sent nor kept
};
const byId = (id) => document.getElementById(id);

function setLiveState(state, message) {
  byId("live").dataset.state = state; // idle | connecting | streaming | finishing | done | error
  byId("live-status").textContent = message;
}

function showLiveError(message) {
  byId("live-error").textContent = message;
  byId("live-error").hidden = false;
  setLiveState("error", "Live transcription stopped.");
}

function openSocket(url) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error(`the server did not open ${STREAM_PATH}`));
  });
}

async function startLive() {
  byId("live-error").hidden = true;
  byId("live-text").textContent = "";
  byId("live-text").dataset.final = "false";
  byId("live-audio").pause();
  byId("live-audio").hidden = true;
  byId("live-legend").hidden = true;
  live.frames = [];
  live.ended = false;
  if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
    showLiveError(
      "Live transcription needs the microphone on a secure page (https:// or " +
        "http://localhost) in a browser with AudioWorklet.",
    );
    return;
  }
  byId("live-start").disabled = true;
  setLiveState("connecting", "Connecting…");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}${STREAM_PATH}?sample_rate=${STREAM_RATE}&words=true`;
  try {
    live.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false },
    });
    live.context = new AudioContext({ sampleRate: STREAM_RATE });
    await live.context.audioWorklet.addModule(PCM16_WORKLET_URL);
    live.socket = await openSocket(url);
  } catch (err) {
    releaseAudio();
    byId("live-start").disabled = false;
    showLiveError(`Live transcription did not start: ${err && err.message ? err.message : err}`);
    return;
  }
  live.serverError = null;
  live.socket.onmessage = onServerMessage;
  live.socket.onclose = onServerClose;
  const source = live.context.createMediaStreamSource(live.media);
  const pcm16 = new AudioWorkletNode(live.context, "pcm16-processor");
  pcm16.port.onmessage = (event) => {
    if (live.ended || !live.socket || live.socket.readyState !== WebSocket.OPEN) return;
    live.socket.send(event.data);
    live.frames.push(new Int16Array(event.data)); // word times count from the first frame sent
  };
  const mute = live.context.createGain();
  mute.gain.value = 0; // pull the graph without playing the microphone back
  source.connect(pcm16).connect(mute).connect(live.context.destination);
  byId("live-stop").disabled = false;
  byId("live-stop").focus();
  setLiveState("streaming", "Listening… the text appears as you speak.");
}

function onServerMessage(event) {
  let reply;
  try {
    reply = JSON.parse(event.data);
  } catch {
    return;
  }
  if (reply.error) {
    live.serverError = reply.detail || reply.error; // the server closes next
    return;
  }
  if (!reply.final) {
    byId("live-text").textContent = reply.text;
    return;
  }
  showWords(byId("live-text"), byId("live-legend"), reply.text, reply.words, byId("live-audio"));
  if (live.frames.length > 0) loadAudio(byId("live-audio"), encodeWav(live.frames, STREAM_RATE));
  live.frames = [];
  byId("live-text").dataset.final = "true";
  setLiveState("done", `Final text, ${reply.duration_s.toFixed(2)} s of audio.`);
}

function onServerClose(event) {
  releaseAudio();
  live.socket = null;
  byId("live-start").disabled = false;
  byId("live-stop").disabled = true;
  if (live.serverError) {
    showLiveError(live.serverError);
  } else if (byId("live").dataset.state !== "done") {
    showLiveError(`The connection closed before the final text (code ${event.code}).`);
  }
}

function stopLive() {
  byId("live-stop").disabled = true;
  releaseAudio();
  if (live.socket && live.socket.readyState === WebSocket.OPEN) {
    live.ended = true;
    live.socket.send("EOS");
    setLiveState("finishing", "Finishing…");
  }
}

function releaseAudio() {
  if (live.media) live.media.getTracks().forEach((track) => track.stop());
  live.media = null;
  if (live.context) live.context.close();
  live.context = null;
}

document.addEventListener("DOMContentLoaded", () => {
  byId("live-start").addEventListener("click", startLive);
  byId("live-stop").addEventListener("click", stopLive);
});
