// Runs on the audio thread of an AudioContext: turns its float samples into 20 ms frames of
// 16-bit PCM. Live (live.js) runs it at 16 kHz and sends the frames to /v1/stream; the
// recorder (app.js) runs it at the device's rate and makes a WAV of them.
"use strict";

const FRAME_SAMPLES = Math.round(sampleRate / 50); // 20 ms; `sampleRate` is the context's

class Pcm16Processor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === FRAME_SAMPLES) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // moved, not copied
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm16-processor", Pcm16Processor);
