/**
 * Little RIFF/WAVE helpers, the one WAV parser of the code base: speech
 * engines hand us PCM, the asset should be a well-formed .wav, and training
 * reads espeak-ng's WAVs back as samples.
 */

/** 16-bit PCM mono WAV from float samples in [-1, 1]. */
export function encodeWav(samples: Float32Array, sampleRate: number): Buffer {
  const data = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) {
    const clamped = Math.max(-1, Math.min(1, samples[i]!));
    data.writeInt16LE(Math.round(clamped * 32767), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

export type WavInfo = { sampleRate: number; channels: number; bitsPerSample: number; dataOffset: number; dataBytes: number; durationSec: number };

/** Reads the fmt and data chunks; throws on anything that is not PCM WAV. */
export function readWavInfo(wav: Buffer): WavInfo {
  if (wav.length < 12 || wav.toString("ascii", 0, 4) !== "RIFF" || wav.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error("not a RIFF/WAVE file");
  }
  let offset = 12;
  let format: Omit<WavInfo, "dataOffset" | "dataBytes" | "durationSec"> | undefined;
  while (offset + 8 <= wav.length) {
    const id = wav.toString("ascii", offset, offset + 4);
    const size = wav.readUInt32LE(offset + 4);
    if (id === "fmt ") {
      format = { channels: wav.readUInt16LE(offset + 10), sampleRate: wav.readUInt32LE(offset + 12), bitsPerSample: wav.readUInt16LE(offset + 22) };
    } else if (id === "data") {
      if (!format) throw new Error("WAV data chunk before its fmt chunk");
      const dataOffset = offset + 8;
      // Streamed WAVs (espeak-ng --stdout) carry a placeholder size: the data runs to the end.
      const dataBytes = Math.min(size, wav.length - dataOffset);
      const bytesPerSecond = format.sampleRate * format.channels * (format.bitsPerSample / 8);
      return { ...format, dataOffset, dataBytes, durationSec: dataBytes / bytesPerSecond };
    }
    offset += 8 + size + (size % 2);
  }
  throw new Error("WAV has no data chunk");
}

/** The first channel of a 16-bit PCM WAV as float samples in [-1, 1), at the file's own rate. */
export function decodeWav(wav: Buffer): { samples: Float32Array; sampleRate: number } {
  const info = readWavInfo(wav);
  if (info.bitsPerSample !== 16) throw new Error(`only 16-bit PCM WAV is read, not ${info.bitsPerSample}-bit`);
  const frameBytes = 2 * info.channels;
  const samples = new Float32Array(Math.floor(info.dataBytes / frameBytes));
  for (let i = 0; i < samples.length; i++) samples[i] = wav.readInt16LE(info.dataOffset + i * frameBytes) / 32768;
  return { samples, sampleRate: info.sampleRate };
}

/** Rewrites the RIFF and data sizes to the real ones (streamed WAVs leave placeholders). */
export function withExactWavSizes(wav: Buffer): Buffer {
  const info = readWavInfo(wav);
  const fixed = Buffer.from(wav.subarray(0, info.dataOffset + info.dataBytes));
  fixed.writeUInt32LE(fixed.length - 8, 4);
  fixed.writeUInt32LE(info.dataBytes, info.dataOffset - 4);
  return fixed;
}
