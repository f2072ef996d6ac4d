/**
 * The client scenario's driver: our client (`lib/client/dial.ts`) or Deno's built-in
 * `WebSocket` used as a load generator against one neutral echo server. Each
 * connection keeps `inflight` text messages going; it prints one JSON line
 * with the echo rate. It prints `{"event":"window","phase":"start"}` and
 * `…"end"}` the moment it takes its counters, so the bench can read this
 * process's CPU time over the counted window from outside (Deno allows
 * reading /proc only with --allow-all).
 *
 * Usage: deno run --allow-net --allow-ffi --allow-read bench/client_driver.ts
 *   --impl ours|builtin --url URL --conns N --inflight K --size B
 *   --warmup-ms MS --duration-ms MS
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dial } from "../mod.ts";

/** A way to open connections that echo-loop: each received message sends the next. */
type Opener = (url: string, payload: string, inflight: number, onEcho: () => void) => Promise<
  () => Promise<void>
>;

const openOurs: Opener = async (url, payload, inflight, onEcho) => {
  const ws = await dial(url);
  ws.onmessage = () => {
    onEcho();
    ws.send(payload).catch(() => {});
  };
  for (let i = 0; i < inflight; i++) ws.send(payload).catch(() => {});
  return async () => {
    await ws.close(1000, "", "local-close");
  };
};

const openBuiltin: Opener = async (url, payload, inflight, onEcho) => {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (e) => reject(new Error(`cannot connect: ${(e as ErrorEvent).message ?? e}`));
  });
  ws.onmessage = () => {
    onEcho();
    ws.send(payload);
  };
  for (let i = 0; i < inflight; i++) ws.send(payload);
  return () => {
    const closed = new Promise<void>((resolve) => ws.onclose = () => resolve());
    ws.close(1000);
    return closed;
  };
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      impl: { type: "string" },
      url: { type: "string" },
      conns: { type: "string", default: "64" },
      inflight: { type: "string", default: "8" },
      size: { type: "string", default: "32" },
      "warmup-ms": { type: "string", default: "1000" },
      "duration-ms": { type: "string", default: "5000" },
    },
  });
  const open = v.impl === "ours" ? openOurs : v.impl === "builtin" ? openBuiltin : null;
  if (!open || !v.url) throw new Error("--impl ours|builtin and --url are required");
  const payload = "x".repeat(Number(v.size));
  let echoed = 0;
  const onEcho = () => echoed++;
  const closers = [];
  for (let i = 0; i < Number(v.conns); i++) {
    closers.push(await open(v.url, payload, Number(v.inflight), onEcho));
  }
  await sleep(Number(v["warmup-ms"]));
  const m0 = echoed, t0 = performance.now();
  console.log(JSON.stringify({ event: "window", phase: "start" }));
  await sleep(Number(v["duration-ms"]));
  const m1 = echoed, t1 = performance.now();
  console.log(JSON.stringify({ event: "window", phase: "end" }));
  const seconds = (t1 - t0) / 1000;
  await Promise.race([Promise.all(closers.map((close) => close())), sleep(2000)]);
  console.log(JSON.stringify({
    event: "result",
    messages: m1 - m0,
    seconds,
    msgs_per_s: (m1 - m0) / seconds,
  }));
}

try {
  await main();
  Deno.exit(0);
} catch (err) {
  console.error(`client driver: ${err instanceof Error ? err.message : err}`);
  Deno.exit(1);
}
