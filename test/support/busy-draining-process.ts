// For test/unit/start-script-signals.test.ts: a process like a loaded Tessera one: its event loop is busy most of
// the time (a CPU-heavy request, a loaded machine), and it drains on SIGINT/SIGTERM (about 1 s) before exiting 0.
const busyFor = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until);
};
let draining = false;
const drain = (signal: string) => {
  if (draining) return;
  draining = true;
  console.log(JSON.stringify({ draining: signal }));
  setTimeout(() => {
    console.log(JSON.stringify({ drained: true }));
    process.exit(0);
  }, 1000);
};
process.on("SIGINT", () => drain("SIGINT"));
process.on("SIGTERM", () => drain("SIGTERM"));
console.log(JSON.stringify({ started: process.pid }));
setInterval(() => {
  if (!draining) busyFor(1000);
}, 20);
