import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A Redis of a test's own on `port`, so stopping, freezing or restarting it disturbs no other test.
 * Without `flags` it keeps nothing on disk.
 */
export function spawnOwnRedis(port: number, flags: string[] = ["--save", "", "--appendonly", "no"]): ChildProcess {
  return spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", ...flags], { stdio: "ignore" });
}
