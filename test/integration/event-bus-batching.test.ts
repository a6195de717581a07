import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEventBus, UNSUBSCRIBE_BATCH_MS, type JobEvent } from "../../services/queue/event-bus.ts";
import { TEST_REDIS_URL } from "../support/test-env.ts";

// Issue #20: the events a tick publishes on one channel are one SPUBLISH; every event still arrives, in order.
let publisher: Redis;
let subscriber: Redis;
const prefix = `test-bus-${randomUUID()}`;

beforeAll(() => {
  publisher = new Redis(TEST_REDIS_URL, { lazyConnect: false });
  subscriber = new Redis(TEST_REDIS_URL, { lazyConnect: false });
});
afterAll(async () => {
  await Promise.all([publisher.quit(), subscriber.quit()]);
});

const event = (jobId: string, status: string, extra: Partial<JobEvent> = {}): JobEvent => ({ jobId, status, progress: 0, at: new Date().toISOString(), ...extra });

async function take<T>(iterator: AsyncIterator<T>, count: number): Promise<T[]> {
  const taken: T[] = [];
  while (taken.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    taken.push(next.value);
  }
  return taken;
}

it("sends the events one tick publishes on a channel as one SPUBLISH, and delivers each, in order, to every subscriber", async () => {
  const bus = createEventBus(publisher, subscriber, prefix);
  const [a, b] = [randomUUID(), randomUUID()];
  const watchA1 = bus.subscribe("job", a)[Symbol.asyncIterator]();
  const watchA2 = bus.subscribe("job", a)[Symbol.asyncIterator]();
  const watchB = bus.subscribe("job", b)[Symbol.asyncIterator]();
  const gotA1 = take(watchA1, 4);
  const gotA2 = take(watchA2, 4);
  const gotB = take(watchB, 2);
  await Promise.all([bus.whenSubscribed("job", a), bus.whenSubscribed("job", b)]);

  const sent: string[] = [];
  // Every command reaches sendCommand, a pipeline's too; the socket's writes say how many round trips went out.
  const sendCommand = publisher.sendCommand.bind(publisher);
  publisher.sendCommand = ((command: Parameters<Redis["sendCommand"]>[0], ...rest: unknown[]) => {
    if (command.name === "spublish") sent.push(String(command.args[0]));
    return (sendCommand as (...args: unknown[]) => unknown)(command, ...rest);
  }) as Redis["sendCommand"];
  const socket = publisher.stream;
  const write = socket.write;
  let writes = 0;
  socket.write = function (this: typeof socket, ...args: Parameters<typeof write>) {
    writes++;
    return write.apply(this, args);
  } as typeof write;
  try {
    // One tick: a job's start with the tokens held behind it, and another job's events in between.
    bus.publish("job", a, event(a, "RUNNING"));
    bus.publish("job", b, event(b, "RUNNING"));
    bus.publish("job", a, event(a, "RUNNING", { token: "Hello" }));
    bus.publish("job", a, event(a, "RUNNING", { token: " world" }));
    bus.publish("job", b, event(b, "SUCCEEDED"));
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Both channels' SPUBLISHes of that tick went out together, as one pipeline: one write to the socket.
    expect(writes).toBe(1);
    // A later tick is a message of its own.
    bus.publish("job", a, event(a, "SUCCEEDED"));

    const expectedA = [["RUNNING", undefined], ["RUNNING", "Hello"], ["RUNNING", " world"], ["SUCCEEDED", undefined]];
    const shape = (events: JobEvent[]) => events.map((e) => [e.status, e.token]);
    expect(shape(await gotA1)).toEqual(expectedA);
    expect(shape(await gotA2)).toEqual(expectedA);
    expect(shape(await gotB)).toEqual([["RUNNING", undefined], ["SUCCEEDED", undefined]]);
    expect((await gotA1).every((e) => e.jobId === a)).toBe(true);
    // Before: five SPUBLISHes for the first tick's five events; now one per channel, and one for the later tick.
    expect(sent).toEqual([`${prefix}:events:job:${a}`, `${prefix}:events:job:${b}`, `${prefix}:events:job:${a}`]);
    expect(writes).toBe(2);
  } finally {
    publisher.sendCommand = sendCommand;
    socket.write = write;
    await Promise.all([watchA1.return?.(), watchA2.return?.(), watchB.return?.()]);
  }
});

it("reads a lone event, sent as the object itself as before, from a producer that does not batch", async () => {
  const bus = createEventBus(publisher, subscriber, prefix);
  const id = randomUUID();
  const watch = bus.subscribe("job", id)[Symbol.asyncIterator]();
  const got = take(watch, 2);
  await bus.whenSubscribed("job", id);
  await publisher.spublish(`${prefix}:events:job:${id}`, JSON.stringify(event(id, "RUNNING")));
  await publisher.spublish(`${prefix}:events:job:${id}`, JSON.stringify(event(id, "SUCCEEDED")));
  expect((await got).map((e) => e.status)).toEqual(["RUNNING", "SUCCEEDED"]);
  await watch.return?.();
});

it("subscribes the channels of watches that start together in one SSUBSCRIBE, unsubscribes those that end together in one SUNSUBSCRIBE, and keeps one listened to again meanwhile", async () => {
  const bus = createEventBus(publisher, subscriber, prefix);
  const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
  const calls: Array<[string, string[]]> = [];
  const ssubscribe = subscriber.ssubscribe.bind(subscriber);
  const sunsubscribe = subscriber.sunsubscribe.bind(subscriber);
  subscriber.ssubscribe = ((...channels: string[]) => (calls.push(["SSUBSCRIBE", channels]), ssubscribe(...channels))) as typeof subscriber.ssubscribe;
  subscriber.sunsubscribe = ((...channels: string[]) => (calls.push(["SUNSUBSCRIBE", channels]), sunsubscribe(...channels))) as typeof subscriber.sunsubscribe;
  try {
    const watches = [a, b, c].map((id) => bus.subscribe("job", id)[Symbol.asyncIterator]());
    const pending = watches.map((watch) => watch.next());
    await Promise.all([a, b, c].map((id) => bus.whenSubscribed("job", id)));
    // The three watches end; c is watched again before its channel leaves, and still gets its events.
    await Promise.all(watches.map((watch) => watch.return?.()));
    await Promise.all(pending);
    const again = bus.subscribe("job", c)[Symbol.asyncIterator]();
    const got = again.next();
    await bus.whenSubscribed("job", c);
    await new Promise((resolve) => setTimeout(resolve, UNSUBSCRIBE_BATCH_MS * 3));
    bus.publish("job", c, event(c, "SUCCEEDED"));
    expect((await got).value).toMatchObject({ jobId: c, status: "SUCCEEDED" });
    const channel = (id: string) => `${prefix}:events:job:${id}`;
    const ours = new Set([a, b, c].map(channel)); // earlier tests' buses share the connection
    const ourCalls = calls.map(([command, channels]): [string, string[]] => [command, channels.filter((name) => ours.has(name))]);
    // The three watches started in one tick: one SSUBSCRIBE for their channels.
    expect(ourCalls.filter(([, channels]) => channels.length > 0)).toEqual([
      ["SSUBSCRIBE", [channel(a), channel(b), channel(c)]],
      ["SUNSUBSCRIBE", [channel(a), channel(b)]],
    ]);
    expect(await publisher.call("PUBSUB", "SHARDNUMSUB", channel(a), channel(b), channel(c))).toEqual([channel(a), 0, channel(b), 0, channel(c), 1]);
    await again.return?.();
  } finally {
    subscriber.ssubscribe = ssubscribe as typeof subscriber.ssubscribe;
    subscriber.sunsubscribe = sunsubscribe as typeof subscriber.sunsubscribe;
  }
});
