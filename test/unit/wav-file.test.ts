import { describe, expect, it } from "vitest";
import { decodeWav, encodeWav, readWavInfo, withExactWavSizes } from "../../services/generation/wav-file.ts";

/** A 16-bit PCM WAV as a streaming writer (espeak-ng --stdout) leaves it: placeholder sizes, a LIST chunk before the data. */
function streamedWav(frames: number[][], sampleRate: number): Buffer {
  const channels = frames[0]!.length;
  const fmt = Buffer.alloc(24);
  fmt.write("fmt ", 0, "ascii");
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(1, 8);
  fmt.writeUInt16LE(channels, 10);
  fmt.writeUInt32LE(sampleRate, 12);
  fmt.writeUInt32LE(sampleRate * channels * 2, 16);
  fmt.writeUInt16LE(channels * 2, 20);
  fmt.writeUInt16LE(16, 22);
  const list = Buffer.concat([Buffer.from("LIST", "ascii"), Buffer.from([3, 0, 0, 0]), Buffer.from("abc\0", "ascii")]); // odd size: padded
  const data = Buffer.alloc(8 + frames.length * channels * 2);
  data.write("data", 0, "ascii");
  data.writeUInt32LE(0xffffffff, 4);
  frames.flat().forEach((value, index) => data.writeInt16LE(value, 8 + index * 2));
  const riff = Buffer.from("RIFF\xff\xff\xff\xffWAVE", "latin1");
  return Buffer.concat([riff, fmt, list, data]);
}

describe("WAV files", () => {
  it("round-trips float samples through 16-bit PCM", () => {
    const samples = Float32Array.from([0, 0.5, -0.5, 1, -1, 0.25]);
    const wav = encodeWav(samples, 22050);
    expect(readWavInfo(wav)).toEqual({ sampleRate: 22050, channels: 1, bitsPerSample: 16, dataOffset: 44, dataBytes: 12, durationSec: 12 / 44100 });
    const decoded = decodeWav(wav);
    expect(decoded.sampleRate).toBe(22050);
    decoded.samples.forEach((value, index) => expect(value).toBeCloseTo(samples[index]!, 4));
  });

  it("reads a streamed WAV: placeholder sizes, other chunks first, and keeps the first channel", () => {
    const wav = streamedWav([[16384, -1], [-16384, -1], [32767, -1]], 16000);
    const info = readWavInfo(wav);
    expect(info).toMatchObject({ channels: 2, sampleRate: 16000, dataBytes: 12 });
    expect(Array.from(decodeWav(wav).samples)).toEqual([0.5, -0.5, 32767 / 32768]);
    const fixed = withExactWavSizes(wav);
    expect(fixed.readUInt32LE(4)).toBe(fixed.length - 8);
    expect(fixed.readUInt32LE(info.dataOffset - 4)).toBe(12);
  });

  it("refuses what is not 16-bit PCM WAV", () => {
    expect(() => readWavInfo(Buffer.from("RIFX....WAVE"))).toThrow(/not a RIFF\/WAVE/);
    const noData = encodeWav(new Float32Array(2), 8000).subarray(0, 36);
    expect(() => readWavInfo(noData)).toThrow(/no data chunk/);
    const eightBit = encodeWav(new Float32Array(2), 8000);
    eightBit.writeUInt16LE(8, 34);
    expect(() => decodeWav(eightBit)).toThrow(/16-bit/);
  });
});
