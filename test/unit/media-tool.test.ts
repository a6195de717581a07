import { describe, expect, it } from "vitest";
import { runMediaTool } from "../../services/assets/media-tool.ts";

describe("runMediaTool", () => {
  it("kills a run that takes longer than its time limit (TIMEOUT)", async () => {
    const started = Date.now();
    const endless = ["-v", "error", "-re", "-f", "lavfi", "-i", "sine=frequency=440", "-f", "null", "-"];
    await expect(runMediaTool("ffmpeg", endless, { timeoutMs: 500 })).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("stops a run that prints more than allowed (PAYLOAD_TOO_LARGE)", async () => {
    const loud = ["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=60", "-f", "f32le", "pipe:1"];
    await expect(runMediaTool("ffmpeg", loud, { timeoutMs: 30_000, maxOutputBytes: 64 * 1024 })).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
  });

  it("reports an unreadable file as CORRUPT_MEDIA without the server's path", async () => {
    const error = await runMediaTool("ffprobe", ["-v", "error", "/etc/hostname"], { timeoutMs: 10_000 }).catch((caught) => caught);
    expect(error.code).toBe("CORRUPT_MEDIA");
    expect(JSON.stringify(error.details)).not.toContain("/etc/hostname");
  });

  it("opens no network URL, even when asked to", async () => {
    const error = await runMediaTool("ffprobe", ["-v", "error", "http://127.0.0.1:9/x.mp4"], { timeoutMs: 10_000 }).catch((caught) => caught);
    expect(error.code).toBe("CORRUPT_MEDIA");
    expect(error.details.stderr).toMatch(/not on whitelist|Protocol not found/i);
  });
});
