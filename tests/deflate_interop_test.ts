/**
 * permessage-deflate (RFC 7692) with peers this project did not write, in
 * both directions, with and without context takeover (issue 15): Chromium,
 * npm `ws`, Python `websockets`, gorilla/websocket and coder/websocket.
 *
 * Every exchange goes through a {@linkcode Tap}, a TCP relay with its own
 * small frame reader, so what is checked is what went over the wire: RSV1
 * on the first frame of every compressed message, compressed sizes well
 * under the message sizes, a repeated message shrinking to a few bytes only
 * when its sender keeps its context, short messages from us left
 * uncompressed (below the 256-byte threshold), and close 1000 both ways.
 * The peers (tests/peers/deflate_*) echo and print what they see as JSON lines.
 *
 * A peer that cannot do a mode is listed as an ignored test whose name says
 * why. The last test sends compressed "bombs" (10 KB that inflate to
 * 10 MB) to a server with a 1 MiB limit: 1009, bounded peak RSS, and other
 * clients still served.
 */

import assert from "node:assert/strict";
import zlib from "node:zlib";
import { type CompressionOptions, type Connection, dial, type Message, serve } from "../mod.ts";
import type { CloseInfo } from "../lib/ws/close.ts";
import { Program } from "./helpers/process.ts";
import { frame, RawPeer } from "./helpers/raw.ts";
import { waitFor } from "./helpers/wait.ts";
import { needs } from "./helpers/needs.ts";
import { buildGoPeer, CHROMIUM, PYTHON } from "./helpers/peers.ts";

const PEERS = new URL("./peers/", import.meta.url);
/** Bound on every wait for a peer; generous for a loaded 2-core machine. */
const WAIT_MS = 20_000;
/** Our threshold (bytes): shorter messages go uncompressed. */
const OUR_THRESHOLD = 256;

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Messages

/** Records of the kind a JSON API sends: field names repeat, values vary a little. */
function jsonRecords(count: number, from = 0): string {
  const cities = ["Lyon", "Ōsaka", "São Paulo", "Kraków", "Zürich", "Reykjavík"];
  const records = Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return {
      id: 100_000 + i,
      user: `user${(i * 7919) % 1000}`,
      email: `user${(i * 7919) % 1000}@example.com`,
      city: cities[i % cities.length],
      active: i % 3 !== 0,
      score: Math.round(((i * 37) % 1000) * 1.5) / 10,
      tags: ["alpha", "beta", "gamma", "delta"].slice(0, 1 + (i % 4)),
      created_at: new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toISOString(),
    };
  });
  return JSON.stringify({ page: from, records });
}

const NON_ASCII = "héllo wörld — 你好 🌍 ";

/** `n` random bytes (getRandomValues gives at most 64 KiB a call). */
function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/** One message of the sequence every peer goes through, and what its frames must show. */
interface Case {
  /** For assertion messages. */
  name: string;
  message: Message;
  /** Compresses to well under half its size: RSV1 and a small payload in both directions. */
  compressible?: boolean;
}

/** About 2.4 KB: under the 4 KiB window Python's server asks for, so a repeat can refer back to it. */
const DOC = jsonRecords(12);

/**
 * The sequence: short and long, text and binary, non-ASCII, incompressible,
 * empty, and 300 KB (past zlib's 64 KiB output chunks and the 16-bit
 * length); DOC twice in a row, so whether the sender kept its context shows
 * in the second one's size.
 */
const CASES: Case[] = [
  { name: "short text", message: "hello" },
  { name: "JSON text", message: DOC, compressible: true },
  { name: "the same JSON again", message: DOC },
  { name: "non-ASCII text", message: NON_ASCII.repeat(100), compressible: true },
  { name: "short binary", message: Uint8Array.from({ length: 100 }, (_, i) => i) },
  {
    name: "compressible binary",
    message: Uint8Array.from({ length: 8192 }, (_, i) => (i * 31) % 64),
    compressible: true,
  },
  { name: "random binary", message: randomBytes(4096) },
  { name: "empty text", message: "" },
  { name: "300 KB of JSON text", message: jsonRecords(1200, 12), compressible: true },
  // Past compression.ts's 256 KiB slices both ways: we send it in fragments, a
  // slice at a time, and inflate the peer's over several turns.
  { name: "1.2 MB of JSON text", message: jsonRecords(4800, 1300), compressible: true },
];
const REPEAT = 2; // CASES[2] repeats CASES[1].

function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromB64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** A message as a step for the scripted peers. */
function asStep(message: Message): { text: string } | { binary: string } {
  return typeof message === "string" ? { text: message } : { binary: b64(message) };
}

/** A message event a peer printed, back to a message. */
function fromEvent(e: PeerEvent): Message {
  assert.equal(e.event, "message", `expected a message, got ${JSON.stringify(e).slice(0, 200)}`);
  return e.binary ? fromB64(e.data as string) : e.data as string;
}

function size(message: Message): number {
  return typeof message === "string" ? encoder.encode(message).length : message.length;
}

function brief(message: Message): string {
  const s = typeof message === "string" ? message : `${message.length} bytes`;
  return s.length > 60 ? `${s.slice(0, 60)}… (${s.length} chars)` : s;
}

/** Checks that `echoes` are CASES' messages, in order, unchanged. */
function assertEchoes(echoes: Message[]): void {
  assert.equal(echoes.length, CASES.length, "one echo per message");
  CASES.forEach((c, i) => assert.deepEqual(echoes[i], c.message, `echo of ${c.name}`));
}

// ---------------------------------------------------------------------------
// A tap: a TCP relay that reads the messages going by

/** A data message seen on the wire. */
interface WireMessage {
  opcode: number;
  /** RSV1 on its first frame: compressed (RFC 7692 §6). */
  rsv1: boolean;
  /** Payload bytes of all its frames, as sent (compressed or not). */
  wire: number;
  frames: number;
}

/** One direction of a connection, as seen by the tap. */
interface Direction {
  /** The HTTP head (request c2s, response s2c). */
  head: string;
  messages: WireMessage[];
  /** Close frames: their codes (1005 when empty). */
  closes: number[];
  /** Bytes after the HTTP head: frames with their headers. */
  frameBytes: number;
}

/**
 * Relays TCP between a client and `upstream` and parses the frames after
 * each side's HTTP head with its own small reader (not lib/ws/frame.ts),
 * keeping each data message's RSV1 and size on the wire. One tap, one
 * connection.
 */
class Tap implements AsyncDisposable {
  readonly c2s: Direction = { head: "", messages: [], closes: [], frameBytes: 0 };
  readonly s2c: Direction = { head: "", messages: [], closes: [], frameBytes: 0 };
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns = new Set<Deno.Conn>();
  readonly #relays: Promise<void>[] = [];
  readonly #accepting: Promise<void>;
  #accepted = 0;

  constructor(readonly upstream: number) {
    this.#accepting = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** `ws://127.0.0.1:PORT/echo` through the tap. */
  get url(): string {
    return `ws://127.0.0.1:${this.port}/echo`;
  }

  /** The response's Sec-WebSocket-Extensions value ("" when absent). */
  get agreed(): string {
    return /^sec-websocket-extensions:[ \t]*(.*?)[ \t]*$/im.exec(this.s2c.head)?.[1] ?? "";
  }

  /** The request's Sec-WebSocket-Extensions value ("" when absent). */
  get offered(): string {
    return /^sec-websocket-extensions:[ \t]*(.*?)[ \t]*$/im.exec(this.c2s.head)?.[1] ?? "";
  }

  async #accept(): Promise<void> {
    try {
      for await (const down of this.#listener) {
        this.#accepted++;
        this.#conns.add(down);
        const up = await Deno.connect({ hostname: "127.0.0.1", port: this.upstream });
        this.#conns.add(up);
        this.#relays.push(this.#relay(down, up, this.c2s), this.#relay(up, down, this.s2c));
      }
    } catch {
      // The listener was closed.
    }
  }

  async #relay(from: Deno.Conn, to: Deno.Conn, dir: Direction): Promise<void> {
    const buf = new Uint8Array(256 * 1024);
    let pending = new Uint8Array(0);
    let inHead = true;
    let open: WireMessage | null = null;
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) break;
        // Parse before relaying, so the receiver never acts on bytes the tap has not counted.
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(buf.subarray(0, n), pending.length);
        pending = joined;
        if (inHead) {
          const end = findHeadEnd(pending);
          if (end >= 0) {
            inHead = false;
            dir.head = new TextDecoder("latin1").decode(pending.subarray(0, end));
            pending = pending.slice(end);
          }
        }
        if (!inHead) {
          let off = 0;
          while (true) {
            const f = parseFrame(pending, off);
            if (f === null) break;
            dir.frameBytes += f.end - off;
            off = f.end;
            if (f.opcode >= 8) {
              if (f.opcode === 8) {
                const p = f.payload;
                dir.closes.push(p.length >= 2 ? (p[0] << 8) | p[1] : 1005);
              }
              continue;
            }
            if (f.opcode !== 0) {
              open = { opcode: f.opcode, rsv1: (f.rsv & 4) !== 0, wire: 0, frames: 0 };
              dir.messages.push(open);
            }
            if (open) {
              open.wire += f.payload.length;
              open.frames++;
            }
            if (f.fin) open = null;
          }
          pending = pending.slice(off);
        }
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // The other relay closed the conns.
    } finally {
      this.#end(from);
      this.#end(to);
    }
  }

  #end(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Waits (bounded) until close frames have gone both ways; checks there was one connection. */
  async closedBothWays(): Promise<void> {
    await waitFor(
      () => this.c2s.closes.length > 0 && this.s2c.closes.length > 0,
      "close frames both ways on the wire",
      WAIT_MS,
    );
    assert.equal(this.#accepted, 1, "one connection through the tap");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of [...this.#conns]) this.#end(conn);
    await Promise.all(this.#relays);
  }
}

function findHeadEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i + 4;
  }
  return -1;
}

/** The frame at `off` in `buf` (RFC 6455 §5.2), unmasked, or null when it is not all there. */
function parseFrame(buf: Uint8Array, off: number) {
  if (buf.length - off < 2) return null;
  const b0 = buf[off];
  const masked = (buf[off + 1] & 0x80) !== 0;
  let length = buf[off + 1] & 0x7f;
  let at = off + 2;
  if (length === 126) {
    if (buf.length < at + 2) return null;
    length = (buf[at] << 8) | buf[at + 1];
    at += 2;
  } else if (length === 127) {
    if (buf.length < at + 8) return null;
    length = Number(new DataView(buf.buffer, buf.byteOffset + at, 8).getBigUint64(0));
    at += 8;
  }
  const key = masked ? buf.subarray(at, at + 4) : null;
  if (masked) at += 4;
  if (buf.length < at + length) return null;
  const payload = buf.slice(at, at + length);
  if (key) { for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]; }
  return {
    fin: (b0 & 0x80) !== 0,
    rsv: (b0 >> 4) & 7,
    opcode: b0 & 0x0f,
    payload,
    end: at + length,
  };
}

// ---------------------------------------------------------------------------
// What the wire must show

/** The parameters of a permessage-deflate header value, sorted, e.g. ["client_max_window_bits=12", …]. */
function deflateParams(value: string): string[] {
  const [name, ...params] = value.split(";").map((s) => s.trim().toLowerCase());
  assert.equal(name, "permessage-deflate", `agreed: ${JSON.stringify(value)}`);
  return params.filter((p) => p !== "").map((p) => p.replace(/\s*=\s*/, "=")).sort();
}

/**
 * The parameters agreed, sorted: both no_context_takeover ones without
 * context takeover, and the window sizes when a peer asks for smaller ones.
 */
function expectedParams(takeover: boolean, windowBits?: number): string[] {
  return [
    ...(windowBits ? [`client_max_window_bits=${windowBits}`] : []),
    ...(takeover ? [] : ["client_no_context_takeover"]),
    ...(windowBits ? [`server_max_window_bits=${windowBits}`] : []),
    ...(takeover ? [] : ["server_no_context_takeover"]),
  ];
}

/** How one direction must look: who sent it and whether that sender keeps its context. */
interface Expect {
  /**
   * When the sender is our code: its threshold. We compress every message
   * of at least that many bytes (even incompressible ones) and no other.
   * Absent for a peer, whose own rules decide.
   */
  threshold?: number;
  /** The sender keeps its compression context between messages. */
  takeover: boolean;
  /** The sender's window in bits (default 15). */
  windowBits?: number;
}

/**
 * Checks the data messages of one direction against CASES: each was
 * compressed when it should be, and the repeated DOC shrank to a few bytes
 * with context takeover and stayed its first size without.
 */
function assertWire(dir: Direction, label: string, expect: Expect): void {
  const msgs = dir.messages;
  assert.equal(msgs.length, CASES.length, `${label}: data messages on the wire`);
  CASES.forEach((c, i) => {
    const m = msgs[i];
    const what = `${label}, ${c.name} (${size(c.message)} bytes, ${m.wire} on the wire)`;
    assert.equal(m.opcode, typeof c.message === "string" ? 1 : 2, `${what}: opcode`);
    if (c.compressible) {
      assert.ok(m.rsv1, `${what}: RSV1, compressed`);
      assert.ok(m.wire < size(c.message) / 2, `${what}: compressed to under half`);
    }
    if (expect.threshold !== undefined) {
      const over = size(c.message) >= expect.threshold;
      assert.equal(m.rsv1, over, `${what}: compressed iff at least ${expect.threshold} bytes`);
    }
  });
  const first = msgs[REPEAT - 1];
  const again = msgs[REPEAT];
  assert.ok(again.rsv1, `${label}: the repeated JSON is compressed`);
  const sizes = `${first.wire} then ${again.wire} bytes on the wire`;
  if (expect.takeover) {
    // A window smaller than DOC cannot reach back to its start: nothing to see then.
    if (2 ** (expect.windowBits ?? 15) > size(DOC)) {
      assert.ok(again.wire * 4 < first.wire, `${label}: with context takeover, ${sizes}`);
    }
  } else {
    assert.ok(again.wire * 10 >= first.wire * 9, `${label}: without context takeover, ${sizes}`);
  }
}

/** Compressed data messages / all, and payload bytes / frame bytes, of one direction (for failure messages). */
function ratio(dir: Direction): string {
  const payload = CASES.reduce((n, c) => n + size(c.message), 0);
  return `${
    (payload / dir.frameBytes).toFixed(1)
  }× (payload ${payload} B, frames ${dir.frameBytes} B)`;
}

// ---------------------------------------------------------------------------
// Peer processes

/** One JSON line a peer printed on stdout. */
type PeerEvent = Record<string, unknown> & { event: string };

/** Runs a scripted peer client to its end; returns what it printed. */
async function runPeerClient(command: string, args: string[]): Promise<PeerEvent[]> {
  await using peer = Program.spawn<PeerEvent>(command, args, { events: "stdout", stdin: true });
  await peer.write(JSON.stringify(CASES.map((c) => asStep(c.message))));
  await peer.closeStdin();
  const { code, stderr } = await peer.wait(WAIT_MS);
  assert.equal(code, 0, `the peer client failed:\n${peer.output()}`);
  assert.equal(peer.events.filter((e) => e.event === "error").length, 0, stderr);
  return peer.events;
}

/** A peer echo server; resolves once it has printed its port. */
async function startPeerServer(
  command: string,
  args: string[],
): Promise<Program<PeerEvent> & { port: number }> {
  const peer = Program.spawn<PeerEvent>(command, args, { events: "stdout", stdin: true });
  try {
    const listening = await peer.waitForEvent("listening", undefined, { timeoutMs: WAIT_MS });
    return Object.assign(peer, { port: listening.port as number });
  } catch (err) {
    await peer[Symbol.asyncDispose]();
    throw err;
  }
}

let goPeer: Promise<string> | null = null;

/**
 * Builds tests/peers/deflate_go (gorilla/websocket and coder/websocket from
 * Debian, in GOPATH mode without network) once per source version; returns
 * the binary's path.
 */
function goPeerBinary(): Promise<string> {
  goPeer ??= buildGoPeer(
    new URL("deflate_go/", PEERS),
    "deflate_go",
    "golang-go, golang-github-gorilla-websocket-dev and golang-nhooyr-websocket-dev",
  );
  goPeer.catch(() => goPeer = null);
  return goPeer;
}

// ---------------------------------------------------------------------------
// Our side

/** Our echo server: serve() from mod.ts with `compression`; remembers its connections. */
function ourServer(compression: boolean | CompressionOptions) {
  const conns: Connection[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    compression,
    origins: ["null"],
    pingInterval: 0,
    handshakeTimeout: WAIT_MS,
  }, async (req) => {
    const ws = await req.upgrade();
    conns.push(ws);
    for await (const message of ws) await ws.send(message);
  });
  return {
    port: server.addr.port,
    /** The first WebSocket it accepted, bounded. */
    conn: () => waitFor(() => conns[0], "our server to accept the WebSocket", WAIT_MS),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Checks how our end of the connection closed: 1000 from the peer, cleanly. */
async function assertPeerClosed1000(ws: Connection): Promise<void> {
  const info: CloseInfo = await waitFor(ws.closed, "our connection to close", WAIT_MS);
  assert.deepEqual(
    { code: info.code, cause: info.cause, clean: info.clean },
    { code: 1000, cause: "peer-close", clean: true },
  );
}

/** A mode of a peer client against our server. */
interface ClientMode {
  /** For the step's name. */
  name: string;
  /** Extra arguments for the peer. */
  args: string[];
  /** Our server's compression option. */
  compression: boolean | CompressionOptions;
  /** Whether both sides keep their context. */
  takeover: boolean;
  /** The windows the peer asks for, when smaller than 15 bits. */
  windowBits?: number;
}

const IMPOSED: CompressionOptions = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
};

/**
 * A peer client (its program `command args… URL`) against our server, through a tap:
 * the echoes come back unchanged, and the wire shows compression both ways as `mode` says.
 */
async function peerClientAgainstOurServer(
  command: string,
  args: string[],
  mode: ClientMode,
): Promise<void> {
  await using ours = ourServer(mode.compression);
  await using tap = new Tap(ours.port);
  const events = await runPeerClient(command, [...args, ...mode.args, tap.url]);
  const ws = await ours.conn();
  await tap.closedBothWays();

  assert.equal(events[0].event, "open", JSON.stringify(events[0]));
  const summary = events.map((e) => JSON.stringify(e).slice(0, 100)).join("\n");
  assert.equal(events.length, CASES.length + 2, `the peer printed:\n${summary}`);
  assertEchoes(events.slice(1, 1 + CASES.length).map(fromEvent));
  const close = events[1 + CASES.length];
  assert.equal(close?.code, 1000, `the peer's close: ${JSON.stringify(close)}`);
  await assertPeerClosed1000(ws);

  assert.match(tap.offered, /permessage-deflate/, "the peer offered permessage-deflate");
  assert.notEqual(ws.extensions, "", "our server agreed to permessage-deflate");
  assert.deepEqual(deflateParams(ws.extensions), deflateParams(tap.agreed));
  assert.deepEqual(
    deflateParams(tap.agreed),
    expectedParams(mode.takeover, mode.windowBits),
    "what we answered",
  );
  assertWire(tap.c2s, `client to server (${ratio(tap.c2s)})`, {
    takeover: mode.takeover,
    windowBits: mode.windowBits,
  });
  assertWire(tap.s2c, `server to client (${ratio(tap.s2c)})`, {
    threshold: OUR_THRESHOLD,
    takeover: mode.takeover,
    windowBits: mode.windowBits,
  });
  assert.deepEqual([tap.c2s.closes, tap.s2c.closes], [[1000], [1000]], "close codes on the wire");
}

/**
 * Our dial() against a peer echo server (`command args…`), through a tap:
 * the echoes come back unchanged, and the wire shows compression both ways.
 */
async function ourClientAgainstPeerServer(
  command: string,
  args: string[],
  takeover: boolean,
  options: { windowBits?: number; threshold?: number } = {},
): Promise<void> {
  const { windowBits, threshold = OUR_THRESHOLD } = options;
  await using peer = await startPeerServer(command, args);
  await using tap = new Tap(peer.port);
  const ws = await waitFor(
    dial(tap.url, { compression: threshold === OUR_THRESHOLD ? true : { threshold } }),
    `dialing ${tap.url}`,
    WAIT_MS,
  );
  const echoes: Message[] = [];
  const iterator = ws[Symbol.asyncIterator]();
  for (const c of CASES) {
    await ws.send(c.message);
    const next = await waitFor(iterator.next(), `the echo of ${brief(c.message)}`, WAIT_MS);
    assert.ok(!next.done, `the connection ended before the echo of ${c.name}`);
    echoes.push(next.value);
  }
  assertEchoes(echoes);
  const info = await waitFor(ws.close(1000), "our close to finish", WAIT_MS);
  assert.deepEqual(
    { code: info.code, cause: info.cause, clean: info.clean },
    { code: 1000, cause: "local-close", clean: true },
  );
  const close = await peer.waitForEvent("close", undefined, { timeoutMs: WAIT_MS });
  assert.equal(close.code, 1000, `the peer saw ${JSON.stringify(close)}`);
  await tap.closedBothWays();

  assert.equal(tap.offered, "permessage-deflate; client_max_window_bits", "our offer");
  assert.notEqual(ws.extensions, "", "our client agreed to permessage-deflate");
  assert.deepEqual(deflateParams(ws.extensions), deflateParams(tap.agreed));
  assert.deepEqual(
    deflateParams(tap.agreed),
    expectedParams(takeover, windowBits),
    "what the peer answered",
  );
  assertWire(tap.c2s, `client to server (${ratio(tap.c2s)})`, { threshold, takeover, windowBits });
  assertWire(tap.s2c, `server to client (${ratio(tap.s2c)})`, { takeover, windowBits });
  assert.deepEqual([tap.c2s.closes, tap.s2c.closes], [[1000], [1000]], "close codes on the wire");
}

/** The client modes for a peer that can ask for no context takeover itself. */
function clientModes(noTakeoverArgs: string[], takeoverArgs: string[] = []): ClientMode[] {
  return [
    { name: "with context takeover", args: takeoverArgs, compression: true, takeover: true },
    {
      name: "no context takeover, asked by the peer",
      args: noTakeoverArgs,
      compression: true,
      takeover: false,
    },
    {
      name: "no context takeover, imposed by our server",
      args: takeoverArgs,
      compression: IMPOSED,
      takeover: false,
    },
  ];
}

/** A mode of a peer echo server that our dial() connects to. */
interface ServerMode {
  /** For the step's name. */
  name: string;
  /** Extra arguments for the peer. */
  args: string[];
  /** Whether both sides keep their context. */
  takeover: boolean;
  /** The windows the peer asks for, when smaller than 15 bits. */
  windowBits?: number;
}

/**
 * One step per mode of a peer server (`command args…`), and one more in
 * the first mode with our threshold at 0, so that even empty and 5-byte
 * messages go out compressed.
 */
async function ourClientSteps(
  t: Deno.TestContext,
  command: string,
  args: string[],
  modes: ServerMode[],
): Promise<void> {
  for (const mode of modes) {
    await t.step(
      mode.name,
      () => ourClientAgainstPeerServer(command, [...args, ...mode.args], mode.takeover, mode),
    );
  }
  const first = modes[0];
  await t.step(
    `${first.name}, our threshold 0: every message compressed, empty ones too`,
    () =>
      ourClientAgainstPeerServer(command, [...args, ...first.args], first.takeover, {
        ...first,
        threshold: 0,
      }),
  );
}

const NO_TAKEOVER = ["--no-context-takeover"];

// ---------------------------------------------------------------------------
// 1. Chromium → our server

/** Flags for a quiet headless run as root in a container (as tests/browser_test.ts). */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

Deno.test({
  ...needs("permessage-deflate: Chromium's WebSocket → our server", "chromium"),
  // playwright keeps its pipe to the browser in ways the sanitizers cannot see as closed.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const modes = [
        { name: "with context takeover", compression: true, takeover: true },
        {
          name: "no context takeover, imposed by our server",
          compression: IMPOSED,
          takeover: false,
        },
      ];
      for (const mode of modes) {
        await t.step(mode.name, async () => {
          await using ours = ourServer(mode.compression);
          await using tap = new Tap(ours.port);
          const steps = CASES.map((c) => asStep(c.message));
          // In the page: send each message, wait for its echo, then close with 1000.
          const result = await page.evaluate(async ([url, steps]) => {
            const ws = new WebSocket(url);
            ws.binaryType = "arraybuffer";
            const queue: MessageEvent[] = [];
            let wake = () => {};
            ws.onmessage = (e) => {
              queue.push(e);
              wake();
            };
            const closed = new Promise<CloseEvent>((r) => ws.onclose = r);
            await new Promise((resolve, reject) => {
              ws.onopen = resolve;
              ws.onerror = () => reject(new Error("the WebSocket failed"));
            });
            const toB64 = (buf: ArrayBuffer) => {
              let s = "";
              const bytes = new Uint8Array(buf);
              for (let i = 0; i < bytes.length; i += 0x8000) {
                s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
              }
              return btoa(s);
            };
            const echoes = [];
            for (const step of steps) {
              if ("text" in step) ws.send(step.text);
              else ws.send(Uint8Array.from(atob(step.binary), (c) => c.charCodeAt(0)));
              while (queue.length === 0) await new Promise<void>((r) => wake = r);
              const data = queue.shift()!.data;
              echoes.push(
                typeof data === "string"
                  ? { event: "message", binary: false, data }
                  : { event: "message", binary: true, data: toB64(data) },
              );
            }
            ws.close(1000);
            const e = await closed;
            return {
              extensions: ws.extensions,
              echoes,
              close: { code: e.code, wasClean: e.wasClean },
            };
          }, [tap.url, steps] as const);
          const ws = await ours.conn();
          await tap.closedBothWays();

          assertEchoes(result.echoes.map(fromEvent));
          assert.deepEqual(result.close, { code: 1000, wasClean: true });
          await assertPeerClosed1000(ws);
          assert.match(tap.offered, /^permessage-deflate/, "Chromium offered permessage-deflate");
          assert.equal(result.extensions, tap.agreed, "Chromium agreed to what we answered");
          assert.deepEqual(deflateParams(ws.extensions), deflateParams(tap.agreed));
          assert.deepEqual(deflateParams(tap.agreed), expectedParams(mode.takeover));
          assertWire(tap.c2s, `client to server (${ratio(tap.c2s)})`, {
            takeover: mode.takeover,
          });
          assertWire(tap.s2c, `server to client (${ratio(tap.s2c)})`, {
            threshold: OUR_THRESHOLD,
            takeover: mode.takeover,
          });
        });
      }
    } finally {
      await browser.close();
    }
  },
});

// ---------------------------------------------------------------------------
// 2. npm ws on Node.js, both ways

const WS_PEER = new URL("deflate_ws.mjs", PEERS).pathname;

Deno.test({
  ...needs("permessage-deflate: npm ws client → our server", "nodeWs"),
  async fn(t) {
    const modes: ClientMode[] = [...clientModes(NO_TAKEOVER), {
      name: "with context takeover, 9-bit windows both ways, asked by the peer",
      args: ["--window-bits=9"],
      compression: true,
      takeover: true,
      windowBits: 9,
    }];
    for (const mode of modes) {
      await t.step(mode.name, () => peerClientAgainstOurServer("node", [WS_PEER, "client"], mode));
    }
  },
});

Deno.test({
  ...needs("permessage-deflate: our dial() → npm ws server", "nodeWs"),
  async fn(t) {
    await ourClientSteps(t, "node", [WS_PEER, "server"], [
      { name: "with context takeover", args: [], takeover: true },
      { name: "no context takeover, imposed by the peer", args: NO_TAKEOVER, takeover: false },
    ]);
  },
});

// ---------------------------------------------------------------------------
// 3. Python websockets, both ways

const PY_PEER = new URL("deflate_websockets.py", PEERS).pathname;

Deno.test({
  ...needs("permessage-deflate: Python websockets client → our server", "python3Websockets"),
  async fn(t) {
    for (const mode of clientModes(NO_TAKEOVER)) {
      await t.step(mode.name, () => peerClientAgainstOurServer(PYTHON, [PY_PEER, "client"], mode));
    }
  },
});

Deno.test({
  ...needs("permessage-deflate: our dial() → Python websockets server", "python3Websockets"),
  async fn(t) {
    await ourClientSteps(t, PYTHON, [PY_PEER, "server"], [
      {
        name: "with context takeover (12-bit windows both ways, as websockets answers)",
        args: [],
        takeover: true,
        windowBits: 12,
      },
      { name: "no context takeover, imposed by the peer", args: NO_TAKEOVER, takeover: false },
    ]);
  },
});

// ---------------------------------------------------------------------------
// 4. gorilla/websocket (Go), both ways: no context takeover only

const GORILLA_ONLY = " (NOT RUN: gorilla/websocket implements only no context takeover)";

Deno.test({
  ...needs("permessage-deflate: gorilla/websocket client → our server", "go", "gorilla", "coder"),
  async fn(t) {
    const bin = await goPeerBinary();
    const args = ["-lib", "gorilla", "-role", "client", "-url"];
    // gorilla offers server_no_context_takeover and client_no_context_takeover itself.
    await t.step(
      "no context takeover, asked by the peer (its only mode)",
      () =>
        peerClientAgainstOurServer(bin, args, {
          name: "",
          args: [],
          compression: true,
          takeover: false,
        }),
    );
  },
});

Deno.test({
  name: "permessage-deflate: gorilla/websocket client → our server with context takeover" +
    GORILLA_ONLY,
  ignore: true,
  fn() {},
});

Deno.test({
  ...needs("permessage-deflate: our dial() → gorilla/websocket server", "go", "gorilla", "coder"),
  async fn(t) {
    const bin = await goPeerBinary();
    await ourClientSteps(t, bin, ["-lib", "gorilla", "-role", "server"], [
      {
        name: "no context takeover, imposed by the peer (its only mode)",
        args: [],
        takeover: false,
      },
    ]);
  },
});

Deno.test({
  name: "permessage-deflate: our dial() → gorilla/websocket server with context takeover" +
    GORILLA_ONLY,
  ignore: true,
  fn() {},
});

// ---------------------------------------------------------------------------
// 5. coder/websocket (nhooyr.io/websocket, Go), both ways

Deno.test({
  ...needs("permessage-deflate: coder/websocket client → our server", "go", "gorilla", "coder"),
  async fn(t) {
    const bin = await goPeerBinary();
    const args = ["-lib", "coder", "-role", "client"];
    // CompressionNoContextTakeover (coder's default) offers both no_context_takeover parameters.
    for (const mode of clientModes(["-url"], ["-takeover", "-url"])) {
      await t.step(mode.name, () => peerClientAgainstOurServer(bin, args, mode));
    }
  },
});

Deno.test({
  ...needs("permessage-deflate: our dial() → coder/websocket server", "go", "gorilla", "coder"),
  async fn(t) {
    const bin = await goPeerBinary();
    await ourClientSteps(t, bin, ["-lib", "coder", "-role", "server"], [
      {
        name: "with context takeover (CompressionContextTakeover)",
        args: ["-takeover"],
        takeover: true,
      },
      {
        name: "no context takeover, imposed by the peer (CompressionNoContextTakeover)",
        args: [],
        takeover: false,
      },
    ]);
  },
});

// ---------------------------------------------------------------------------
// 6. Bombs: a small compressed message that inflates past the limit

/** The limit the bomb test's server runs with. */
const BOMB_LIMIT = 1024 * 1024;
/** What one bomb inflates to. */
const BOMB_SIZE = 10 * 1024 * 1024;

/** 10 MiB of zeros, deflated with a sync flush and its 00 00 FF FF stripped (RFC 7692 §7.2.1): about 10 KB. */
function bomb(): Uint8Array {
  const out = zlib.deflateRawSync(new Uint8Array(BOMB_SIZE), {
    level: 9,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.length - 4);
}

/** Peak and current RSS of `pid` from /proc (kB → bytes). */
function memory(pid: number): { hwm: number; rss: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { hwm: kb("VmHWM") * 1024, rss: kb("VmRSS") * 1024 };
}

/** Resets the peak RSS of `pid` (Linux's clear_refs 5); false when not allowed. */
function resetPeak(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Our server in a process of its own (tests/peers/deflate_server.ts), so its RSS is its own. */
function startBombServer(maxMessageSize: number) {
  return startPeerServer(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-ffi",
    "--allow-read",
    new URL("deflate_server.ts", PEERS).pathname,
    `--max-message-size=${maxMessageSize}`,
  ]);
}

/** Sends one bomb on a raw connection that agreed to permessage-deflate; resolves with the close code. */
async function sendBomb(
  port: number,
  payload: Uint8Array,
): Promise<{ code: number; reason: string }> {
  await using peer = await RawPeer.connect(port);
  const res = await peer.handshake("/echo", {
    extra: ["Sec-WebSocket-Extensions: permessage-deflate"],
  });
  assert.equal(res.headers.get("sec-websocket-extensions"), "permessage-deflate");
  // RSV1 on a binary frame: a compressed message (RFC 7692 §6).
  await peer.write(frame(0x2, payload, { mask: true, rsv: 4 }));
  const { code, reason } = await peer.readClose(WAIT_MS);
  return { code, reason };
}

/**
 * How much the server's peak RSS may grow while it refuses four bombs at
 * once: about 2 MiB each (inflating stops past the 1 MiB limit) and slack.
 * The same four under a 64 MiB limit grow it by about 65 MiB.
 */
const BOMB_RSS_BOUND = 24 * 1024 * 1024;

Deno.test("permessage-deflate: compressed bombs past maxMessageSize get 1009, the server's RSS stays bounded, and others are served", async (t) => {
  const payload = bomb();
  assert.ok(payload.length < 12_000, `a bomb is ${payload.length} bytes on the wire`);

  await t.step(
    "control: with a limit above them, four bombs inflate and the peak RSS shows it",
    async () => {
      await using server = await startBombServer(64 * 1024 * 1024);
      const peers = await Promise.all([0, 1, 2, 3].map(async () => {
        const peer = await RawPeer.connect(server.port);
        await peer.handshake("/echo", { extra: ["Sec-WebSocket-Extensions: permessage-deflate"] });
        return peer;
      }));
      try {
        const before = memory(server.pid);
        const reset = resetPeak(server.pid);
        await Promise.all(peers.map((p) => p.write(frame(0x2, payload, { mask: true, rsv: 4 }))));
        for (const peer of peers) {
          const echo = await peer.readFrame(WAIT_MS);
          assert.equal(echo.rsv, 4, "the echo comes back compressed");
        }
        const grown = memory(server.pid).hwm - (reset ? before.rss : before.hwm);
        assert.ok(
          grown > BOMB_RSS_BOUND,
          `inflating them grew the peak RSS by only ${(grown / 2 ** 20).toFixed(1)} MiB`,
        );
      } finally {
        for (const peer of peers) await peer[Symbol.asyncDispose]();
      }
    },
  );

  await t.step("four bombs at once against a 1 MiB limit", async () => {
    await using server = await startBombServer(BOMB_LIMIT);
    const url = `ws://127.0.0.1:${server.port}/echo`;
    // Another client, with its compression context warm, before, during and after.
    const other = await waitFor(dial(url, { compression: true }), "dialing", WAIT_MS);
    const messages = other[Symbol.asyncIterator]();
    const roundTrip = async (i: number) => {
      const text = jsonRecords(20, i);
      await other.send(text);
      const next = await waitFor(messages.next(), "the other client's echo", WAIT_MS);
      assert.equal(next.value, text);
    };
    await roundTrip(0);
    const before = memory(server.pid);
    const reset = resetPeak(server.pid);
    const bombs = [0, 1, 2, 3].map(() => sendBomb(server.port, payload));
    for (let i = 1; i <= 5; i++) await roundTrip(i);
    for (const { code, reason } of await Promise.all(bombs)) {
      assert.equal(code, 1009);
      assert.match(reason, /inflates past the limit of 1048576 bytes/);
    }
    const after = memory(server.pid);
    const grown = after.hwm - (reset ? before.rss : before.hwm);
    assert.ok(
      grown < BOMB_RSS_BOUND,
      `the peak RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB (bound ${
        BOMB_RSS_BOUND / 2 ** 20
      } MiB)`,
    );
    // The server logged each as a 1009 it sent, and still serves.
    const closes = await server.until("four 1009 closes", () => {
      const c = server.events.filter((e) => e.event === "close" && e.code === 1009);
      return c.length >= 4 ? c : undefined;
    }, WAIT_MS);
    assert.equal(closes.length, 4);
    await roundTrip(6);
    const info = await waitFor(other.close(1000), "the other client's close", WAIT_MS);
    assert.equal(info.code, 1000);
    const fresh = await waitFor(dial(url, { compression: true }), "dialing again", WAIT_MS);
    await fresh.send(DOC);
    const [echo] = await waitFor(
      (async () => {
        for await (const m of fresh) return [m];
        return [];
      })(),
      "a new connection's echo",
      WAIT_MS,
    );
    assert.equal(echo, DOC);
    await waitFor(fresh.close(1000), "the new connection's close", WAIT_MS);
  });
});
