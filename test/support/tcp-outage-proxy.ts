import net from "node:net";

/**
 * A TCP proxy in front of one local port that a test can take down and bring
 * back on the same port: while it is down, new connections are refused and
 * open ones are reset, as a restarting server looks to its clients. Only the
 * test's own clients go through it, so the shared server behind stays up.
 */
export class TcpOutageProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  private constructor(private readonly targetPort: number, private readonly targetHost: string) {}

  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpOutageProxy> {
    const proxy = new TcpOutageProxy(targetPort, targetHost);
    await proxy.resume();
    return proxy;
  }

  /** Listens again (on the port it had before, if any). */
  async resume(): Promise<void> {
    if (this.server) return;
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Refuses new connections and resets the open ones. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
    await closed;
  }
}
