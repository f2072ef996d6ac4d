/**
 * Bad input under load, on loopback: 1,000 connections that dribble a
 * handshake (slowloris) or send garbage, before or after the upgrade, while 10
 * good clients (Deno's built-in WebSocket, a peer this project did not write)
 * echo continuously. The good clients must lose nothing and see no error, and
 * afterwards the server must hold no connection and no extra file descriptor.
 */

import assert from "node:assert/strict";
import { prng } from "./helpers/prng.ts";
import { startServer } from "./helpers/process.ts";
import { sleep, TimeoutError, waitFor } from "./helpers/wait.ts";

/** The bound under test: the server must close an unfinished handshake after this. */
const HANDSHAKE_TIMEOUT_MS = 2_000;
/** Slowloris connections: a header byte every few hundred ms, never finished. */
const SLOWLORIS = 400;
/** Connections sending random bytes instead of an HTTP request. */
const GARBAGE_HEAD = 300;
/** Connections that upgrade properly, then send random bytes as frames. */
const GARBAGE_FRAMES = 300;
/** Attackers started per batch, one batch every {@linkcode BATCH_GAP_MS}. */
const BATCH = 100;
const BATCH_GAP_MS = 20;
/** The delay between two slowloris bytes. */
const DRIP_MS = 300;
/** A bad connection still open this long after it started is a failure. */
const GIVE_UP_MS = 15_000;
/** Good clients echoing throughout. */
const GOOD_CLIENTS = 10;
/** fds the server may hold beyond its warmed-up count (e.g. a timer's or the runtime's). */
const FD_SLACK = 8;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function randomBytes(rand: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

/** Open fds of a process. */
function fdCount(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** GET over a fresh TCP connection with `Connection: close`, so no pooled socket stays open. */
async function httpGet(port: number, path: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    encoder.encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`),
  );
  let text = "";
  const buf = new Uint8Array(16 * 1024);
  for (let n; (n = await conn.read(buf)) !== null;) text += decoder.decode(buf.subarray(0, n));
  return text;
}

/** A number from the server's /metrics. */
async function metric(port: number, name: string): Promise<number> {
  const text = await httpGet(port, "/metrics");
  const m = new RegExp(`^${name.replace(/[{}"=]/g, "\\$&")} (\\d+)$`, "m").exec(text);
  assert.ok(m, `${name} is missing from /metrics:\n${text}`);
  return Number(m[1]);
}

/** Polls /metrics until `name` is 0 (bounded), and returns it. */
async function drained(port: number, name = "keepalive_ws_connections_open"): Promise<number> {
  let n = NaN;
  await waitFor(async () => (n = await metric(port, name)) === 0, `${name} to drop to 0`, 10_000, {
    context: () => `${name} is ${n}`,
  });
  return n;
}

/** One good client: sends numbered messages and checks each echo, until stopped. */
class GoodClient {
  sent = 0;
  received = 0;
  readonly problems: string[] = [];
  #ws: WebSocket;
  #stopped = false;
  #closed = Promise.withResolvers<CloseEvent>();
  #opened = Promise.withResolvers<void>();

  constructor(readonly id: number, port: number) {
    this.#ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    this.#ws.onopen = () => {
      this.#opened.resolve();
      this.#next();
    };
    this.#ws.onerror = (e) => {
      this.problems.push(`error: ${(e as ErrorEvent).message ?? e.type}`);
      this.#opened.resolve();
    };
    this.#ws.onclose = (e) => {
      if (!this.#stopped) this.problems.push(`closed early: ${e.code} ${e.reason}`);
      this.#opened.resolve();
      this.#closed.resolve(e);
    };
    this.#ws.onmessage = (e) => {
      const expected = this.#text(this.received);
      if (e.data !== expected) this.problems.push(`got ${e.data}, expected ${expected}`);
      this.received++;
      if (this.received === this.sent) this.#next();
    };
  }

  get opened(): Promise<void> {
    return this.#opened.promise;
  }

  #text(n: number): string {
    return `client ${this.id} message ${n}`;
  }

  #next(): void {
    if (this.#stopped || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(this.#text(this.sent++));
  }

  /** Stops sending, waits for the echo still due, closes with 1000 and returns the close event. */
  async stop(): Promise<CloseEvent> {
    this.#stopped = true;
    await waitFor(() => this.received === this.sent, `the echoes due to client ${this.id}`, 10_000);
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000, "done");
    return await this.#closed.promise;
  }
}

/** The bad connections open now, and the most open at once. */
class OpenSet extends Set<Deno.Conn> {
  peak = 0;
  override add(conn: Deno.Conn): this {
    super.add(conn);
    this.peak = Math.max(this.peak, this.size);
    return this;
  }
}

/** What happened to one bad connection. */
interface Outcome {
  kind: "slowloris" | "garbage-head" | "garbage-frames";
  /** ms from connect until the server ended it, or null if it did not. */
  endedAfterMs: number | null;
}

/**
 * Resolves when the server ends `conn` (EOF or an error), reading and
 * discarding what it sends; resolves false if `ms` passes first.
 */
async function endedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(4096);
  const ended = (async () => {
    try {
      while ((await conn.read(buf)) !== null) { /* discard */ }
    } catch {
      // A reset also ends it.
    }
    return true;
  })();
  return await waitFor(ended, "the server to end the connection", ms).catch((err) => {
    if (err instanceof TimeoutError) return false;
    throw err;
  });
}

/** Dribbles a request head a byte at a time, never finishing it. */
async function slowloris(port: number, open: OpenSet): Promise<Outcome> {
  const started = Date.now(); // before connect: the server's clock starts later
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  open.add(conn);
  const head = encoder.encode(
    `GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${"a".repeat(1000)}`,
  );
  let ended = false;
  const watching = endedWithin(conn, GIVE_UP_MS).then((e) => ended = e);
  for (let i = 0; i < head.length && !ended && Date.now() - started < GIVE_UP_MS; i++) {
    try {
      await conn.write(head.subarray(i, i + 1));
    } catch {
      break; // The server closed it.
    }
    await Promise.race([sleep(DRIP_MS), watching]);
  }
  await watching;
  const after = Date.now() - started;
  open.delete(conn);
  conn.close();
  return { kind: "slowloris", endedAfterMs: ended ? after : null };
}

/** Sends random bytes as a request head; the server must answer or time it out. */
async function garbageHead(
  port: number,
  open: OpenSet,
  bytes: Uint8Array,
): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  open.add(conn);
  const started = Date.now();
  try {
    await conn.write(bytes);
  } catch {
    // Refused before we finished writing.
  }
  const ended = await endedWithin(conn, GIVE_UP_MS);
  const after = Date.now() - started;
  open.delete(conn);
  conn.close();
  return { kind: "garbage-head", endedAfterMs: ended ? after : null };
}

/** Upgrades properly, then sends random bytes as frames, then half-waits and leaves. */
async function garbageFrames(
  port: number,
  open: OpenSet,
  garbage: Uint8Array,
): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  open.add(conn);
  const started = Date.now();
  await conn.write(encoder.encode(
    `GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  ));
  // Read the 101 (and anything after it) until the blank line.
  let head = "";
  const buf = new Uint8Array(4096);
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    head += decoder.decode(buf.subarray(0, n));
  }
  assert.match(head, /^HTTP\/1\.1 101 /, "a proper upgrade must succeed under load");
  try {
    await conn.write(garbage);
  } catch {
    // The server already failed the connection.
  }
  // Random bytes may be an unfinished frame the server rightly waits for: then
  // we leave, and the server must still clean up.
  let ended = await endedWithin(conn, 1_000);
  if (!ended) {
    await conn.closeWrite();
    ended = await endedWithin(conn, GIVE_UP_MS);
  }
  const after = Date.now() - started;
  open.delete(conn);
  conn.close();
  return { kind: "garbage-frames", endedAfterMs: ended ? after : null };
}

Deno.test("1,000 slowloris and garbage connections cost 10 echoing clients nothing, and leave no connection or fd behind", async () => {
  await using server = await startServer(["--handshake-timeout", `${HANDSHAKE_TIMEOUT_MS}ms`], {
    timeoutMs: 30_000,
  });
  const { port, proc } = server;

  // Warm up (FFI, the first accept, the page cache), then take the fd baseline.
  const warm = new GoodClient(-1, port);
  await warm.opened;
  await sleep(200);
  await warm.stop();
  assert.equal(await drained(port), 0);
  const fdsBefore = fdCount(proc.pid);

  const open = new OpenSet();
  const clients: GoodClient[] = [];
  try {
    for (let i = 0; i < GOOD_CLIENTS; i++) clients.push(new GoodClient(i, port));
    await Promise.all(clients.map((c) => c.opened));
    const sentBefore = clients.map((c) => c.sent);

    const rand = prng(0x5eed);
    const kinds = [
      ...Array<Outcome["kind"]>(SLOWLORIS).fill("slowloris"),
      ...Array<Outcome["kind"]>(GARBAGE_HEAD).fill("garbage-head"),
      ...Array<Outcome["kind"]>(GARBAGE_FRAMES).fill("garbage-frames"),
    ];
    // Interleave the kinds, in a fixed order.
    for (let i = kinds.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
    }
    const attacks: Promise<Outcome>[] = [];
    for (let i = 0; i < kinds.length; i++) {
      if (i > 0 && i % BATCH === 0) await sleep(BATCH_GAP_MS);
      const kind = kinds[i];
      if (kind === "slowloris") {
        attacks.push(slowloris(port, open));
      } else if (kind === "garbage-head") {
        const garbage = randomBytes(rand, 1 + Math.floor(rand() * 2000));
        // Half of them end like a head, so the parser sees a complete one.
        const bytes = rand() < 0.5 ? garbage : new Uint8Array([...garbage, 13, 10, 13, 10]);
        attacks.push(garbageHead(port, open, bytes));
      } else {
        attacks.push(garbageFrames(port, open, randomBytes(rand, 1 + Math.floor(rand() * 4000))));
      }
    }
    const outcomes = await Promise.all(attacks);
    const sentDuring = clients.map((c, i) => c.sent - sentBefore[i]);

    const closes = await Promise.all(clients.map((c) => c.stop()));
    for (const [i, c] of clients.entries()) {
      assert.deepEqual(c.problems, [], `good client ${i}`);
      assert.equal(c.received, c.sent, `good client ${i} lost messages`);
      assert.ok(sentDuring[i] > 0, `good client ${i} got no echo while the attack ran`);
      assert.equal(closes[i].code, 1000);
      assert.ok(closes[i].wasClean, `good client ${i} did not close cleanly`);
    }

    const stuck = outcomes.filter((o) => o.endedAfterMs === null);
    assert.equal(
      stuck.length,
      0,
      `${stuck.length} bad connections were never closed by the server`,
    );
    const loris = outcomes.filter((o) => o.kind === "slowloris").map((o) => o.endedAfterMs!);
    loris.sort((a, b) => a - b);
    // Each dribbling handshake is cut at the timeout (detection-time tolerance for a loaded machine).
    assert.ok(loris[0] >= HANDSHAKE_TIMEOUT_MS - 50, `a slowloris was cut after ${loris[0]} ms`);
    assert.ok(
      loris[loris.length - 1] <= HANDSHAKE_TIMEOUT_MS + 4_000,
      `a slowloris lasted ${loris[loris.length - 1]} ms`,
    );

    // The server kept every failure inside its connection handler.
    assert.deepEqual(
      proc.events.filter((e) => e.level === "error"),
      [],
      "the server logged errors",
    );
    assert.equal(await drained(port), 0);
    const timeouts = await metric(
      port,
      'keepalive_ws_http_requests_dropped_total{reason="handshake-timeout"}',
    );
    assert.ok(
      timeouts >= SLOWLORIS,
      `only ${timeouts} handshake timeouts for ${SLOWLORIS} slowloris`,
    );
    let fdsAfter = NaN;
    await waitFor(
      () => (fdsAfter = fdCount(proc.pid)) <= fdsBefore + FD_SLACK,
      "the server's fds to return to their count before the attack",
      10_000,
      { context: () => `the server holds ${fdsAfter} fds, ${fdsBefore} before the attack` },
    );
    assert.ok(
      fdsAfter <= fdsBefore + FD_SLACK,
      `the server holds ${fdsAfter} fds, ${fdsBefore} before the attack`,
    );

    const echoes = clients.reduce((sum, c) => sum + c.received, 0);
    const causes = new Map<string, number>();
    for (const e of proc.events.filter((e) => e.event === "close")) {
      const cause = String(e.cause);
      causes.set(cause, (causes.get(cause) ?? 0) + 1);
    }
    const rejected = proc.events.filter((e) => e.event === "rejected").length;
    console.log(
      [
        `bad connections: ${outcomes.length} (up to ${open.peak} open at once)`,
        `slowloris cut after ${loris[0]}–${loris[loris.length - 1]} ms (median ${
          loris[loris.length >> 1]
        } ms), handshake timeout ${HANDSHAKE_TIMEOUT_MS} ms`,
        `server closes by cause: ${
          JSON.stringify(Object.fromEntries(causes))
        }, rejected: ${rejected}`,
        `good clients: ${echoes} echoes, none lost; server fds ${fdsBefore} before, ${fdsAfter} after`,
      ].join("\n"),
    );
  } finally {
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.allSettled(clients.map((c) => c.stop()));
  }
});
