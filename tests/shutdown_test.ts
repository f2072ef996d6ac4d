/**
 * Shutdown keeps its promise under load: SIGTERM ends server.ts within
 * 5 s plus a small margin, whatever its connections are doing, and the
 * connections the server cancels itself are not reported as warnings.
 */

import assert from "node:assert/strict";
import { Attacker, clientFrame, fill, MiB, Op } from "./helpers/attack.ts";
import { startServer } from "./helpers/process.ts";
import { RawPeer } from "./helpers/raw.ts";

/** The promise in the README: 5 s for clients to answer 1001. */
const PROMISE_MS = 5_000;
/** What is allowed on top: the process has to exit, and this machine is shared. */
const MARGIN_MS = 1_500;

Deno.test({
  name:
    "SIGTERM under load (non-readers, floods, half-sent heads, half-sent messages) exits 0 within 5 s plus a margin, with no warning for what the server cancelled",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using server = await startServer();
    const port = server.port;
    const attackers: Attacker[] = [];
    const peers: RawPeer[] = [];
    const stop = new AbortController();
    try {
      // Non-readers: their echoes fill our queues; reading them has stopped.
      const tiny = fill(clientFrame(Op.Binary, new Uint8Array(1)), 64 * 1024);
      for (let i = 0; i < 4; i++) {
        const a = await Attacker.open(port, { read: false });
        attackers.push(a);
        a.flood(tiny, 64 * MiB, stop.signal);
      }
      // Floods that read: busy connections.
      const small = fill(clientFrame(Op.Text, "x".repeat(16)), 64 * 1024);
      for (let i = 0; i < 4; i++) {
        const a = await Attacker.open(port);
        attackers.push(a);
        a.flood(small, 1024 * MiB, stop.signal);
      }
      // Half-sent messages: 4 MiB of a 16 MiB one.
      const big = clientFrame(Op.Binary, new Uint8Array(4 * MiB));
      for (let i = 0; i < 4; i++) {
        const a = await Attacker.open(port);
        attackers.push(a);
        const header = new Uint8Array(big.subarray(0, 14));
        header[1] = 0x80 | 127;
        new DataView(header.buffer).setBigUint64(2, BigInt(16 * MiB));
        a.write(header).then(() => a.write(big.subarray(14)));
      }
      // Half-sent request heads: still handshaking when the signal comes.
      for (let i = 0; i < 8; i++) {
        const p = await RawPeer.connect(port);
        peers.push(p);
        await p.write(new TextEncoder().encode("GET /echo HTTP/1.1\r\nHost: x\r\n"));
      }
      await new Promise((r) => setTimeout(r, 1_500)); // let the queues fill

      const from = server.proc.events.length;
      const signalled = performance.now();
      server.proc.kill("SIGTERM");
      const exit = await server.proc.wait(PROMISE_MS + 10_000);
      const took = performance.now() - signalled;

      assert.equal(exit.code, 0, exit.stderr.slice(-2000));
      assert.ok(took <= PROMISE_MS + MARGIN_MS, `exited ${Math.round(took)} ms after SIGTERM`);
      const after = server.proc.events.slice(from);
      const complaints = after.filter((e) => e.level === "warn" || e.level === "error");
      assert.deepEqual(complaints, [], "no warning or error for what the server cancelled itself");
      assert.ok(after.some((e) => e.event === "stopped"), "the server said it stopped");
      const closes = after.filter((e) => e.event === "close");
      assert.ok(closes.length >= attackers.length, `${closes.length} close events`);
    } finally {
      stop.abort();
      for (const a of attackers) a.close();
      for (const p of peers) p.close();
    }
  },
});
