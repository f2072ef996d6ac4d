/**
 * The library's heartbeat figures and hooks, which `--show-pings`, the
 * `close` summary, the RTT histogram and `--probe-idle` are built on:
 * `ping()` → round trip, `pings` {sent, answered, rtt…}, `onping`,
 * `onpong`, `onpingsent`, `lastFrameAt`. Checked between our server and
 * our client over loopback TCP.
 */

import assert from "node:assert/strict";
import { type Connection, dial, serve, type ServeOptions } from "../mod.ts";
import { waitFor } from "./helpers/wait.ts";

/** A server (with `options`) and a client connected to it; both ends handed out. */
async function pair(options: Partial<ServeOptions> = {}, dialOptions = {}) {
  let accepted!: (ws: Connection) => void;
  const got = new Promise<Connection>((r) => accepted = r);
  const server = serve(
    { hostname: "127.0.0.1", port: 0, pingInterval: 0, pongTimeout: 0, ...options },
    async (req) => {
      const ws = await req.upgrade();
      ws.onmessage = (m) => void ws.send(m);
      accepted(ws);
      await ws.closed;
    },
  );
  const client = await dial(`ws://127.0.0.1:${server.addr.port}/`, dialOptions);
  const ws = await got;
  return {
    client,
    ws,
    async [Symbol.asyncDispose]() {
      client.terminate();
      await server.shutdown();
    },
  };
}

Deno.test("ping() resolves with the round trip, and pings counts it: sent, answered, min, max, sum", async () => {
  await using p = await pair();
  const rtts: number[] = [];
  for (let i = 0; i < 5; i++) rtts.push(await p.client.ping());
  for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
  const s = p.client.pings;
  assert.equal(s.sent, 5);
  assert.equal(s.answered, 5);
  assert.equal(s.rttMinMs, Math.min(...rtts));
  assert.equal(s.rttMaxMs, Math.max(...rtts));
  assert.equal(s.rttSumMs, rtts.reduce((a, b) => a + b, 0));
  assert.deepEqual(p.ws.pings, { sent: 0, answered: 0, rttMinMs: 0, rttMaxMs: 0, rttSumMs: 0 });
});

Deno.test("onpingsent sees each heartbeat ping as it goes out; the peer's onping sees it arrive; onpong brings the round trip", async () => {
  await using p = await pair({ pingInterval: 50, pongTimeout: 2_000 });
  const sent: Uint8Array[] = [];
  const arrived: Uint8Array[] = [];
  const rtts: (number | null)[] = [];
  p.ws.onpingsent = (payload) => sent.push(payload);
  p.client.onping = (payload) => arrived.push(payload.slice()); // a view into the read buffer
  p.ws.onpong = (rtt) => rtts.push(rtt);
  await waitFor(() => rtts.length >= 3, "three pongs");
  assert.ok(sent.length >= 3);
  // Each ping seen leaving one end arrives at the other, with its payload.
  const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const got = arrived.map(hex);
  for (const payload of sent.slice(0, 3)) assert.ok(got.includes(hex(payload)), hex(payload));
  for (const rtt of rtts) assert.ok(rtt !== null && rtt >= 0, `rtt ${rtt}`);
  assert.equal(p.ws.pings.answered, rtts.length);
  assert.ok(p.ws.pings.sent >= p.ws.pings.answered);
});

Deno.test("onpingsent is called for ping() too, with its payload", async () => {
  await using p = await pair();
  const sent: string[] = [];
  p.client.onpingsent = (payload) => sent.push(new TextDecoder().decode(payload));
  await p.client.ping(new TextEncoder().encode("mine"));
  assert.deepEqual(sent, ["mine"]);
});

Deno.test("an onpingsent that throws fails the connection with 1011, not the heartbeat's timer", async () => {
  await using p = await pair({ pingInterval: 50, pongTimeout: 2_000 });
  p.ws.onpingsent = () => {
    throw new Error("boom");
  };
  const [server, client] = await waitFor(
    Promise.all([p.ws.closed, p.client.closed]),
    "the connection to fail",
    5_000,
  );
  assert.deepEqual([server.code, server.cause, server.error], [1011, "local-close", "boom"]);
  assert.deepEqual([client.code, client.cause], [1011, "peer-close"]);
});

Deno.test("lastFrameAt moves forward when bytes arrive, and not otherwise", async () => {
  await using p = await pair();
  const first = p.client.lastFrameAt;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(p.client.lastFrameAt, first, "nothing arrived");
  await p.client.send("hello");
  for await (const _ of p.client) break;
  assert.ok(p.client.lastFrameAt >= first + 30, `${p.client.lastFrameAt - first} ms later`);
});
