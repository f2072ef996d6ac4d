/**
 * Interoperability with WebSocket implementations this project did not write:
 * Deno's built-in WebSocket (client and `Deno.upgradeWebSocket` server), npm
 * `ws` on Node.js, and Python `websockets`, in both directions. Each peer
 * echoes and prints what it sees (tests/peers/README.md); the checks are here.
 *
 * Where a peer cannot show a pong, a {@linkcode Tap} between the two ends
 * reads the frames off the wire.
 */

import assert from "node:assert/strict";
import type { CloseInfo, Message, WebSocketConn } from "../lib/ws/conn.ts";
import { dial } from "../lib/client/dial.ts";
import { ECHO_PATH, type EchoOptions } from "../app/server/echo.ts";
import { Program, runClient } from "./helpers/process.ts";
import { startTestServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";
import { needs } from "./helpers/needs.ts";
import { PYTHON } from "./helpers/peers.ts";

const PEERS = new URL("./peers/", import.meta.url);
/** Bound on every wait for a peer; generous for a loaded 2-core machine. */
const WAIT_MS = 15_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Messages

/** `n` random bytes (getRandomValues gives at most 64 KiB a call). */
function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

const NON_ASCII = "héllo wörld — 你好 🌍";
/** Every byte value, so a peer that mangles any of them shows it. */
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
/** 70 KB: over 65535, so it needs the 64-bit length (RFC 6455 §5.2). */
const BIG_SIZE = 70 * 1024;
const BIG_BINARY = randomBytes(BIG_SIZE);
const BIG_TEXT = NON_ASCII.repeat(Math.ceil(BIG_SIZE / encoder.encode(NON_ASCII).length));
/** Our server's limit in these tests: the 70 KB messages fit, OVERSIZED does not. */
const MAX_MESSAGE_SIZE = 100 * 1024;
const OVERSIZED = new Uint8Array(MAX_MESSAGE_SIZE + 1);
const PING_PAYLOAD = encoder.encode("ping ✓ 42");
const CLIENT_CLOSE = { code: 4000, reason: "client says bye — ✓" };
const SERVER_CLOSE = { code: 4001, reason: "server says bye — ✓" };

/** The messages each peer must echo unchanged. */
const MESSAGES: Message[] = ["hello", ALL_BYTES, BIG_BINARY, BIG_TEXT, NON_ASCII];

function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** A message as the scripted peers print it. */
function asEvent(message: Message): PeerEvent {
  return typeof message === "string"
    ? { event: "message", binary: false, data: message }
    : { event: "message", binary: true, data: b64(message) };
}

/** A message as a step for the scripted peers. */
function asStep(message: Message): Record<string, string> {
  return typeof message === "string" ? { text: message } : { binary: b64(message) };
}

/** Short text for an assertion message, not 70 KB of it. */
function brief(message: unknown): string {
  const s = typeof message === "string" ? message : JSON.stringify(message);
  return s.length > 80 ? `${s.slice(0, 80)}… (${s.length} chars)` : s;
}

// ---------------------------------------------------------------------------
// Peer processes

/** One JSON line a peer printed on stdout. */
type PeerEvent = Record<string, unknown> & { event: string };

/** A peer subprocess whose stdout is read as JSON events; killed on dispose. */
type Peer = Program<PeerEvent>;

/** Starts a peer; `input`, if given, is written to its stdin, which is then closed. */
function startPeer(command: string, args: string[], input?: string): Peer {
  const peer = Program.spawn<PeerEvent>(command, args, {
    events: "stdout",
    stdin: input !== undefined,
  });
  if (input !== undefined) peer.write(input).then(() => peer.closeStdin()).catch(() => {});
  return peer;
}

/** The first event named `name` (after the first `after` events) that passes `test`, bounded. */
function next(
  peer: Peer,
  name: string,
  test: (e: PeerEvent) => boolean = () => true,
  after = 0,
): Promise<PeerEvent> {
  return peer.waitForEvent(name, test, { after, timeoutMs: WAIT_MS });
}

/** Waits for the peer to exit by itself, bounded; every line it printed must be an event. */
async function finished(
  peer: Peer,
): Promise<{ code: number; events: PeerEvent[]; stderr: string }> {
  const { code, stdout, stderr } = await peer.wait(WAIT_MS);
  const lines = stdout.split("\n").filter((line) => line !== "");
  assert.equal(peer.events.length, lines.length, `the peer printed non-events:\n${stdout}`);
  return { code, events: peer.events, stderr };
}

/** A peer echo server; resolves once it has printed its port. */
async function peerServer(command: string, args: string[]): Promise<Peer & { port: number }> {
  const peer = startPeer(command, args);
  try {
    const listening = await next(peer, "listening");
    return Object.assign(peer, { port: listening.port as number });
  } catch (err) {
    await peer[Symbol.asyncDispose]();
    throw err;
  }
}

/** Runs a scripted peer client to its end; returns what it printed. */
async function scriptedClient(
  command: string,
  args: string[],
  steps: unknown[],
): Promise<PeerEvent[]> {
  await using peer = startPeer(command, args, JSON.stringify(steps));
  const { code, events, stderr } = await finished(peer);
  assert.equal(code, 0, `the peer client failed: ${stderr}`);
  return events;
}

// ---------------------------------------------------------------------------
// Our server, in this process

/** Our server on a free loopback port, with its JSON log events; shut down on dispose. */
function ourServer(options: Partial<EchoOptions> = {}) {
  return startTestServer({
    maxMessageSize: MAX_MESSAGE_SIZE,
    handshakeTimeout: WAIT_MS,
    protocols: ["chat.v2", "chat.v1"],
    ...options,
  });
}

// ---------------------------------------------------------------------------
// A tap: a TCP relay that reads the frames going by

/** A frame seen on the wire, unmasked. */
interface WireFrame {
  /** `c2s` client to server, `s2c` server to client. */
  dir: "c2s" | "s2c";
  opcode: number;
  payload: Uint8Array;
}

const PONG = 0xa;

/**
 * Relays TCP between a client and `upstream`, and parses the frames after
 * each side's HTTP head with its own small reader (not lib/ws/frame.ts), so the
 * pongs a peer sends can be checked even when its API does not show them.
 */
class Tap implements AsyncDisposable {
  readonly frames: WireFrame[] = [];
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns = new Set<Deno.Conn>();
  readonly #relays: Promise<void>[] = [];
  readonly #accepting: Promise<void>;

  constructor(readonly upstream: number) {
    this.#accepting = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    try {
      for await (const down of this.#listener) {
        this.#conns.add(down);
        const up = await Deno.connect({ hostname: "127.0.0.1", port: this.upstream });
        this.#conns.add(up);
        this.#relays.push(this.#relay(down, up, "c2s"), this.#relay(up, down, "s2c"));
      }
    } catch {
      // The listener was closed.
    }
  }

  async #relay(from: Deno.Conn, to: Deno.Conn, dir: WireFrame["dir"]): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let pending = new Uint8Array(0);
    let inHead = true;
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(buf.subarray(0, n), pending.length);
        pending = joined;
        if (inHead) {
          const end = decoder.decode(pending).indexOf("\r\n\r\n");
          if (end < 0) continue;
          inHead = false;
          pending = pending.slice(encoder.encode(decoder.decode(pending).slice(0, end + 4)).length);
        }
        pending = this.#parse(pending, dir);
      }
    } catch {
      // The other relay closed the conns.
    } finally {
      this.#end(from);
      this.#end(to);
    }
  }

  /** Records every whole frame in `buf`; returns the unparsed rest. */
  #parse(buf: Uint8Array, dir: WireFrame["dir"]): Uint8Array<ArrayBuffer> {
    let off = 0;
    while (buf.length - off >= 2) {
      const opcode = buf[off] & 0x0f;
      const masked = (buf[off + 1] & 0x80) !== 0;
      let length = buf[off + 1] & 0x7f;
      let at = off + 2;
      if (length === 126) {
        if (buf.length < at + 2) break;
        length = (buf[at] << 8) | buf[at + 1];
        at += 2;
      } else if (length === 127) {
        if (buf.length < at + 8) break;
        length = Number(new DataView(buf.buffer, buf.byteOffset + at, 8).getBigUint64(0));
        at += 8;
      }
      const key = masked ? buf.slice(at, at + 4) : null;
      if (masked) at += 4;
      if (buf.length < at + length) break;
      const payload = buf.slice(at, at + length);
      if (key) { for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]; }
      this.frames.push({ dir, opcode, payload });
      off = at + length;
    }
    return buf.slice(off);
  }

  #end(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** The first pong in direction `dir` whose payload equals `payload`, bounded. */
  pong(dir: WireFrame["dir"], payload: Uint8Array): Promise<WireFrame> {
    return waitFor(
      () =>
        this.frames.find((f) =>
          f.dir === dir && f.opcode === PONG && b64(f.payload) === b64(payload)
        ),
      `a pong (${dir}) with payload ${b64(payload)} on the wire`,
      WAIT_MS,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of [...this.#conns]) this.#end(conn);
    await Promise.all(this.#relays);
  }
}

// ---------------------------------------------------------------------------
// Our client side

/** Dials `url` with Go's keepalive defaults; the connection is closed on dispose. */
async function ourClient(url: string, subprotocols?: string[]) {
  const ws = await waitFor(dial(url, { protocols: subprotocols }), `dialing ${url}`, WAIT_MS);
  const messages = ws[Symbol.asyncIterator]();
  return {
    ws,
    /** The next message, bounded. */
    async receive(): Promise<Message> {
      const next = await waitFor(messages.next(), "the echo of our message", WAIT_MS);
      assert.ok(!next.done, "the connection ended before the echo arrived");
      return next.value;
    },
    closed: (): Promise<CloseInfo> => waitFor(ws.closed, "the connection to end", WAIT_MS),
    async [Symbol.asyncDispose]() {
      if (ws.isOpen) await waitFor(ws.close(), "our close to finish", WAIT_MS);
    },
  };
}

/** Sends each message and checks that its echo comes back unchanged. */
async function assertEchoes(
  client: { ws: WebSocketConn; receive(): Promise<Message> },
): Promise<void> {
  for (const message of MESSAGES) {
    await client.ws.send(message);
    const echo = await client.receive();
    assert.deepEqual(echo, message, `echo of ${brief(asEvent(message).data)}`);
  }
}

/** What a peer echo server must support to be checked by {@linkcode ourClientAgainst}. */
interface PeerServerKind {
  /** Starts the peer, speaking `protocols`. */
  start(protocols: string[]): Promise<Peer & { port: number }>;
  /** Whether the peer can ping on `!ping` and report our pong. */
  pings: boolean;
  /** Whether the peer reports the pings it receives. */
  reportsPings: boolean;
}

/** Runs our dial() against a peer echo server, through a tap, and checks every aspect. */
async function ourClientAgainst(t: Deno.TestContext, kind: PeerServerKind): Promise<void> {
  await using peer = await kind.start(["chat.v2", "chat.v1"]);
  await using tap = new Tap(peer.port);
  const url = `ws://127.0.0.1:${tap.port}/echo`;

  await t.step("agrees with the peer on the subprotocol it picked from our offer", async () => {
    await using client = await ourClient(url, ["chat.v3", "chat.v1", "chat.v2"]);
    const open = await next(peer, "open");
    // Python websockets ranks by the sum of both lists' positions, so v1 and
    // v2 tie there; what must hold is that both ends name the same one.
    assert.equal(client.ws.protocol, open.protocol);
    assert.ok(["chat.v1", "chat.v2"].includes(client.ws.protocol!), `got ${client.ws.protocol}`);
  });

  await t.step("agrees on no subprotocol when none is shared", async () => {
    await using client = await ourClient(url, ["chat.v9"]);
    assert.equal(client.ws.protocol, null);
  });

  await t.step("echoes text, binary, 70 KB and non-ASCII messages unchanged", async () => {
    await using client = await ourClient(url);
    await assertEchoes(client);
  });

  await t.step("answers our ping with a pong carrying the same payload", async () => {
    await using client = await ourClient(url);
    const from = peer.events.length;
    await client.ws.ping(PING_PAYLOAD);
    await tap.pong("s2c", PING_PAYLOAD);
    if (kind.reportsPings) {
      const ping = await next(peer, "ping", () => true, from);
      assert.equal(ping.data, b64(PING_PAYLOAD));
    }
  });

  if (kind.pings) {
    await t.step("gets our pong, with its payload, to the peer's ping", async () => {
      await using client = await ourClient(url);
      const from = peer.events.length;
      const payload = encoder.encode(`peer ping ${from}`);
      await client.ws.send(`!ping ${b64(payload)}`);
      const pong = await next(peer, "pong", () => true, from);
      assert.equal(pong.data, b64(payload));
      await tap.pong("c2s", payload);
    });
  }

  await t.step("our close code and reason reach the peer; the handshake is clean", async () => {
    await using client = await ourClient(url);
    const from = peer.events.length;
    const info = await waitFor(
      client.ws.close(CLIENT_CLOSE.code, CLIENT_CLOSE.reason),
      "our close to finish",
      WAIT_MS,
    );
    assert.deepEqual(
      { code: info.code, reason: info.reason, cause: info.cause, clean: info.clean },
      { ...CLIENT_CLOSE, cause: "local-close", clean: true },
    );
    const close = await next(peer, "close", () => true, from);
    assert.deepEqual({ code: close.code, reason: close.reason }, CLIENT_CLOSE);
  });

  await t.step("the peer's close code and reason reach us as a clean peer-close", async () => {
    await using client = await ourClient(url);
    await client.ws.send(`!close ${JSON.stringify(SERVER_CLOSE)}`);
    const info = await client.closed();
    assert.deepEqual(
      { code: info.code, reason: info.reason, cause: info.cause, clean: info.clean },
      { ...SERVER_CLOSE, cause: "peer-close", clean: true },
    );
  });
}

// ---------------------------------------------------------------------------
// Our server side, with a scripted peer client

/** Runs a scripted peer client (`ws` or `websockets`) against our server and checks every aspect. */
async function scriptedClientAgainstOurServer(
  t: Deno.TestContext,
  command: string,
  script: string[],
): Promise<void> {
  await using ours = ourServer();
  const run = (steps: unknown[], ...args: string[]) =>
    scriptedClient(command, [...script, ...args, ours.url.href], steps);

  await t.step(
    "echoes text, binary, 70 KB and non-ASCII messages unchanged, and pongs with the ping's payload",
    async () => {
      const events = await run([
        ...MESSAGES.map(asStep),
        { ping: b64(PING_PAYLOAD) },
        { close: CLIENT_CLOSE },
      ]);
      assert.deepEqual(events.slice(1, -2), MESSAGES.map(asEvent));
      assert.deepEqual(events.at(-2), { event: "pong", data: b64(PING_PAYLOAD) });
    },
  );

  await t.step(
    "the client's close code and reason reach our server; we answer with the same code",
    async () => {
      const before = ours.events.length;
      const events = await run([{ close: CLIENT_CLOSE }]);
      // RFC 6455 §5.5.1: the answer echoes the code; we send no reason back.
      assert.deepEqual(events.at(-1), { event: "close", code: CLIENT_CLOSE.code, reason: "" });
      const logged = await ours.waitForEvent("close", undefined, {
        after: before,
        timeoutMs: WAIT_MS,
      });
      assert.deepEqual(
        { code: logged.code, reason: logged.reason, cause: logged.cause, clean: logged.clean },
        { ...CLIENT_CLOSE, cause: "peer-close", clean: true },
      );
    },
  );

  await t.step("a message over our limit gets close 1009 with our reason", async () => {
    const events = await run([{ text: "hello" }, { binary: b64(OVERSIZED) }]);
    const close = events.at(-1)!;
    assert.equal(close.event, "close");
    assert.equal(close.code, 1009);
    assert.match(
      close.reason as string,
      new RegExp(`${OVERSIZED.length} bytes exceeds the limit of ${MAX_MESSAGE_SIZE}`),
    );
  });

  await t.step("agrees on the first subprotocol the client offers that we speak", async () => {
    const events = await run(
      [{ close: CLIENT_CLOSE }],
      "--protocol",
      "chat.v3",
      "--protocol",
      "chat.v1",
      "--protocol",
      "chat.v2",
    );
    assert.deepEqual(events[0], { event: "open", protocol: "chat.v1" });
  });

  await t.step("a foreign Origin gets 403; our own host's Origin is accepted", async () => {
    const foreign = await run([], "--origin", "http://evil.example");
    assert.deepEqual(foreign[0], { event: "refused", status: 403 });
    await ours.waitForEvent("rejected", (e) => e.status === 403, { timeoutMs: WAIT_MS });
    const own = await run([{ close: CLIENT_CLOSE }], "--origin", `http://${ours.server.addr}`);
    assert.deepEqual(own[0], { event: "open", protocol: "" });
  });

  await t.step("shutting our server down closes the client with 1001 and our reason", async () => {
    await using peer = startPeer(
      command,
      [...script, ours.url.href],
      JSON.stringify([{ text: "hello" }, { await_close: true }]),
    );
    await next(peer, "message");
    await waitFor(ours.server.shutdown(), "our server to shut down", WAIT_MS);
    const close = await next(peer, "close");
    assert.deepEqual(close, { event: "close", code: 1001, reason: "server shutting down" });
    assert.equal((await finished(peer)).code, 0);
  });
}

// ---------------------------------------------------------------------------
// 1. Deno's built-in WebSocket client → our server

/** Deno's built-in WebSocket as a client, with its events queued. */
function denoClient(url: string | URL, protocols?: string[]) {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  const opened = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<CloseEvent>();
  const queue: Message[] = [];
  ws.onopen = () => opened.resolve();
  ws.onerror = () => opened.reject(new Error("Deno's WebSocket failed to connect"));
  ws.onclose = (e) => closed.resolve(e);
  ws.onmessage = (e) =>
    queue.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer));
  // A failed open also closes; keep the close promise from being unhandled.
  closed.promise.catch(() => {});
  opened.promise.catch(() => {});
  return {
    ws,
    open: () => waitFor(opened.promise, "Deno's WebSocket to open", WAIT_MS),
    closed: () => waitFor(closed.promise, "Deno's WebSocket to close", WAIT_MS),
    receive: () => waitFor(() => queue.shift(), "the echo of Deno's message", WAIT_MS),
    async [Symbol.asyncDispose]() {
      if (ws.readyState !== WebSocket.CLOSED) {
        ws.close();
        await closed.promise;
      }
    },
  };
}

Deno.test("Deno's built-in WebSocket client works with our server", async (t) => {
  await using ours = ourServer({ pingInterval: 100 });

  await t.step("echoes text, binary, 70 KB and non-ASCII messages unchanged", async () => {
    await using client = denoClient(ours.url);
    await client.open();
    for (const message of MESSAGES) {
      client.ws.send(message as string | Uint8Array<ArrayBuffer>);
      assert.deepEqual(await client.receive(), message, `echo of ${brief(message)}`);
    }
  });

  await t.step("answers our server's heartbeat pings with pongs", async () => {
    await using tap = new Tap(ours.port);
    await using client = denoClient(`ws://127.0.0.1:${tap.port}${ECHO_PATH}`);
    await client.open();
    const ping = await waitFor(
      () => tap.frames.find((f) => f.dir === "s2c" && f.opcode === 0x9),
      "our server to ping",
      WAIT_MS,
    );
    await tap.pong("c2s", ping.payload);
  });

  await t.step("the client's close code and reason reach our server", async () => {
    const before = ours.events.length;
    await using client = denoClient(ours.url);
    await client.open();
    client.ws.close(CLIENT_CLOSE.code, CLIENT_CLOSE.reason);
    const e = await client.closed();
    assert.deepEqual({ code: e.code, reason: e.reason, wasClean: e.wasClean }, {
      code: CLIENT_CLOSE.code,
      reason: "",
      wasClean: true,
    });
    const logged = await ours.waitForEvent("close", undefined, {
      after: before,
      timeoutMs: WAIT_MS,
    });
    assert.deepEqual(
      { code: logged.code, reason: logged.reason, cause: logged.cause, clean: logged.clean },
      { ...CLIENT_CLOSE, cause: "peer-close", clean: true },
    );
  });

  await t.step("a message over our limit gets close 1009 with our reason", async () => {
    await using client = denoClient(ours.url);
    await client.open();
    client.ws.send(OVERSIZED);
    const e = await client.closed();
    assert.equal(e.code, 1009);
    assert.match(e.reason, new RegExp(`exceeds the limit of ${MAX_MESSAGE_SIZE}`));
  });

  await t.step("gets the first subprotocol it offers that we speak, or none", async () => {
    // We speak [chat.v2, chat.v1]; the client's order decides (RFC 6455 §4.1 item 10).
    await using a = denoClient(ours.url, ["chat.v3", "chat.v1", "chat.v2"]);
    await a.open();
    assert.equal(a.ws.protocol, "chat.v1");
    await using b = denoClient(ours.url, ["chat.v9"]);
    // Browsers fail the connection when the server picks none of several
    // offered; with none picked, Deno opens with an empty protocol.
    await b.open();
    assert.equal(b.ws.protocol, "");
  });

  await t.step("is accepted without an Origin header", async () => {
    const before = ours.events.length;
    await using client = denoClient(ours.url);
    await client.open();
    assert.equal(ours.events.slice(before).filter((e) => e.event === "rejected").length, 0);
  });

  await t.step("shutting our server down closes it with 1001 and our reason", async () => {
    await using client = denoClient(ours.url);
    await client.open();
    await waitFor(ours.server.shutdown(), "our server to shut down", WAIT_MS);
    const e = await client.closed();
    assert.deepEqual({ code: e.code, reason: e.reason, wasClean: e.wasClean }, {
      code: 1001,
      reason: "server shutting down",
      wasClean: true,
    });
  });
});

// ---------------------------------------------------------------------------
// 2. Our client → Deno.serve + Deno.upgradeWebSocket

const DENO_SERVER: PeerServerKind = {
  start: (protocols) =>
    peerServer(Deno.execPath(), [
      "run",
      "--allow-net",
      new URL("deno_echo_server.ts", PEERS).pathname,
      ...protocols.flatMap((p) => ["--protocol", p]),
    ]),
  pings: false,
  reportsPings: false,
};

Deno.test("our dial() works with a Deno.upgradeWebSocket echo server", async (t) => {
  await ourClientAgainst(t, DENO_SERVER);
});

Deno.test("the client program sends, prints the echoes and exits 0 against Deno's server", async () => {
  await using peer = await DENO_SERVER.start([]);
  const out = await runClient([
    "--log-format",
    "json",
    "--send",
    "hello",
    "--send",
    NON_ASCII,
    `ws://127.0.0.1:${peer.port}/echo`,
  ], { timeoutMs: WAIT_MS });
  const stderr = out.stderr;
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(out.stdout.split("\n"), ["hello", NON_ASCII, ""]);
  const close = await next(peer, "close");
  assert.deepEqual({ code: close.code, reason: close.reason }, { code: 1000, reason: "" });
  const logged = stderr.trim().split("\n").map((l) => JSON.parse(l));
  const closeLog = logged.find((e) => e.event === "close");
  assert.deepEqual({ code: closeLog.code, clean: closeLog.clean }, { code: 1000, clean: true });
});

// ---------------------------------------------------------------------------
// 3. npm ws on Node.js, both ways

const WS_SERVER: PeerServerKind = {
  start: (protocols) =>
    peerServer("node", [
      new URL("ws_echo_server.mjs", PEERS).pathname,
      ...protocols.flatMap((p) => ["--protocol", p]),
    ]),
  pings: true,
  reportsPings: true,
};

Deno.test({
  ...needs("a Node.js ws client works with our server", "nodeWs"),
  fn: (t) => scriptedClientAgainstOurServer(t, "node", [new URL("ws_client.mjs", PEERS).pathname]),
});

Deno.test({
  ...needs("our dial() works with a Node.js ws echo server", "nodeWs"),
  fn: (t) => ourClientAgainst(t, WS_SERVER),
});

// ---------------------------------------------------------------------------
// 4. Python websockets, both ways

const PYTHON_SERVER: PeerServerKind = {
  start: (protocols) =>
    peerServer(PYTHON, [
      new URL("websockets_echo_server.py", PEERS).pathname,
      ...protocols.flatMap((p) => ["--protocol", p]),
    ]),
  pings: true,
  reportsPings: false,
};

Deno.test({
  ...needs("a Python websockets client works with our server", "python3Websockets"),
  fn: (t) =>
    scriptedClientAgainstOurServer(t, PYTHON, [
      new URL("websockets_client.py", PEERS).pathname,
    ]),
});

Deno.test({
  ...needs("our dial() works with a Python websockets echo server", "python3Websockets"),
  fn: (t) => ourClientAgainst(t, PYTHON_SERVER),
});
