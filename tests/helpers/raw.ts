/**
 * A raw TCP peer for protocol tests: it speaks RFC 6455 byte by byte, written
 * independently of `lib/`, so tests can send exactly the bytes a rule is about
 * (hex frames, broken handshakes, dribbled writes) and read back exactly what
 * our code sent.
 *
 * ```ts
 * await using peer = await RawPeer.connect(server.port);
 * await peer.handshake();
 * await peer.write(frame(0x1, "hi", { mask: true }));
 * const f = await peer.readFrame();
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { sleep, TimeoutError, waitFor } from "./wait.ts";

/** RFC 6455 §1.3: the GUID appended to the key for Sec-WebSocket-Accept. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** How long a read waits by default before the test fails (ms). */
export const DEFAULT_READ_TIMEOUT_MS = 5_000;

const encoder = new TextEncoder();

/** Turns hex (spaces, newlines and `|` allowed as separators) into bytes. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/[\s|]/g, "");
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new Error(`not hex: ${text}`);
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** Renders bytes as lowercase hex, for assertion messages. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `n` random bytes (crypto.getRandomValues fills at most 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** How {@linkcode frame} builds a frame. */
export interface FrameSpec {
  /** FIN bit; default true. */
  fin?: boolean;
  /** RSV1–3 as a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3); default 0. */
  rsv?: number;
  /** Set MASK and mask the payload (a client's frame); default false. */
  mask?: boolean;
  /** The masking key; default a fixed non-zero key, so masking shows. */
  key?: Uint8Array;
  /** Claim this payload length in the header instead of the real one. */
  length?: number | bigint;
  /** Force the length form: 7-bit, 16-bit (126) or 64-bit (127). */
  lengthForm?: 7 | 16 | 64;
}

/** A fixed masking key for test frames. */
export const TEST_MASK_KEY: Uint8Array = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/**
 * Builds one frame by hand (RFC 6455 §5.2), independent of `lib/ws/frame.ts`.
 * `payload` may be a string (UTF-8) or bytes. With `length` the header may
 * claim a length other than the payload's: for truncated or oversized frames.
 */
export function frame(
  opcode: number,
  payload: string | Uint8Array = new Uint8Array(0),
  spec: FrameSpec = {},
): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const len = BigInt(spec.length ?? body.length);
  const form = spec.lengthForm ?? (len < 126n ? 7 : len <= 0xffffn ? 16 : 64);
  const head: number[] = [
    ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (opcode & 0x0f),
  ];
  const maskBit = spec.mask ? 0x80 : 0;
  if (form === 7) {
    head.push(maskBit | Number(len));
  } else if (form === 16) {
    head.push(maskBit | 126, Number(len >> 8n) & 0xff, Number(len) & 0xff);
  } else {
    head.push(maskBit | 127);
    for (let i = 7; i >= 0; i--) head.push(Number((len >> BigInt(i * 8)) & 0xffn));
  }
  const key = spec.key ?? TEST_MASK_KEY;
  const data = new Uint8Array(body);
  if (spec.mask) {
    head.push(...key);
    for (let i = 0; i < data.length; i++) data[i] ^= key[i % 4];
  }
  return concat(Uint8Array.from(head), data);
}

/** One frame as {@linkcode splitFrames} reads it. */
export interface SplitFrame {
  opcode: number;
  fin: boolean;
  /** RSV1: a compressed message's first frame (RFC 7692 §6). */
  rsv1: boolean;
  masked: boolean;
  /** The payload, unmasked. */
  payload: Uint8Array;
}

/** Splits whole frames written one after the other (RFC 6455 §5.2), independent of `lib/ws/frame.ts`. */
export function splitFrames(bytes: Uint8Array): SplitFrame[] {
  const frames: SplitFrame[] = [];
  for (let i = 0; i < bytes.length;) {
    const masked = (bytes[i + 1] & 0x80) !== 0;
    let len = bytes[i + 1] & 0x7f;
    let at = i + 2;
    if (len === 126) {
      len = (bytes[at] << 8) | bytes[at + 1];
      at += 2;
    } else if (len === 127) {
      len = Number(new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigUint64(0));
      at += 8;
    }
    const key = masked ? bytes.subarray(at, at + 4) : null;
    if (key) at += 4;
    let payload = bytes.slice(at, at + len);
    if (key) payload = payload.map((b, j) => b ^ key[j & 3]);
    frames.push({
      opcode: bytes[i] & 0x0f,
      fin: (bytes[i] & 0x80) !== 0,
      rsv1: (bytes[i] & 0x40) !== 0,
      masked,
      payload,
    });
    i = at + len;
  }
  return frames;
}

/** A close frame payload: the 2-byte code, then the reason (string or raw bytes). */
export function closePayload(code: number, reason: string | Uint8Array = ""): Uint8Array {
  const r = typeof reason === "string" ? encoder.encode(reason) : reason;
  return concat(Uint8Array.of(code >> 8, code & 0xff), r);
}

/** A frame as read off the wire, unmasked. */
export interface RawFrame {
  /** FIN bit. */
  fin: boolean;
  /** RSV1–3 as a 3-bit number. */
  rsv: number;
  /** The opcode. */
  opcode: number;
  /** Whether MASK was set. */
  masked: boolean;
  /** The payload, unmasked. */
  payload: Uint8Array;
}

/** A parsed HTTP response head, plus whatever body bytes arrived with it. */
export interface RawResponse {
  /** The status code. */
  status: number;
  /** The raw head text, CRLFCRLF included. */
  head: string;
  /** Header fields, names lowercased (last one wins). */
  headers: Map<string, string>;
}

/** How a connection ended, as the raw peer saw it. */
export type EndKind = "eof" | "reset";

/** A fresh random Sec-WebSocket-Key. */
export function randomKey(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
}

/** The Sec-WebSocket-Accept value for `key`, computed here, not by `lib/`. */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** A valid client upgrade request for `path`, with `extra` header lines. */
export function upgradeRequest(
  path = "/echo",
  opts: { host?: string; key?: string; extra?: string[] } = {},
): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: ${opts.host ?? "127.0.0.1"}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${opts.key ?? randomKey()}`,
    "Sec-WebSocket-Version: 13",
    ...(opts.extra ?? []),
    "",
    "",
  ].join("\r\n");
}

/**
 * One raw TCP connection with a read buffer. Reads are buffered and survive
 * timeouts: a read that timed out is picked up by the next call, so
 * {@linkcode RawPeer.expectSilence} can be followed by more reads.
 * Dispose with `await using` (or call {@linkcode RawPeer.close}).
 */
export class RawPeer implements AsyncDisposable {
  /** The TCP connection. */
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #chunk = new Uint8Array(64 * 1024);
  #pending: Promise<number | null> | null = null;
  #end: EndKind | null = null;
  #closed = false;

  /** Wraps an open connection (e.g. one accepted by a fake server). */
  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects to `port` on `hostname` (default 127.0.0.1). */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname, port }));
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** Writes all of `data` (bytes, or a string as UTF-8/latin1-safe ASCII). */
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** Writes `data` in pieces of `size` bytes, one write each, with an optional pause. */
  async dribble(data: Uint8Array | string, size = 1, pauseMs = 0): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    for (let i = 0; i < bytes.length; i += size) {
      await this.write(bytes.subarray(i, i + size));
      if (pauseMs > 0) await sleep(pauseMs);
    }
  }

  /** Reads more bytes into the buffer; false at EOF or reset (see {@linkcode RawPeer.end}). */
  async #fill(timeoutMs: number, what: string): Promise<boolean> {
    if (this.#end) return false;
    this.#pending ??= this.conn.read(this.#chunk);
    let n: number | null;
    try {
      n = await waitFor(this.#pending, what, timeoutMs);
    } catch (err) {
      if (err instanceof TimeoutError) throw err;
      this.#pending = null;
      this.#end = "reset";
      return false;
    }
    this.#pending = null;
    if (n === null) {
      this.#end = "eof";
      return false;
    }
    const grown = new Uint8Array(this.#buf.length + n);
    grown.set(this.#buf);
    grown.set(this.#chunk.subarray(0, n), this.#buf.length);
    this.#buf = grown;
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Reads exactly `n` bytes; throws at EOF or after `timeoutMs`. */
  async readExactly(n: number, timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      const left = Math.max(1, deadline - Date.now());
      if (!await this.#fill(left, `${n} bytes`)) {
        throw new Error(`connection ended (${this.#end}) after ${this.#buf.length} of ${n} bytes`);
      }
    }
    return this.#take(n);
  }

  /** Reads one HTTP response head (up to CRLFCRLF); frame bytes behind it stay buffered. */
  async readResponse(timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    let end: number;
    while ((end = findCrlfCrlf(this.#buf)) === -1) {
      const left = Math.max(1, deadline - Date.now());
      if (!await this.#fill(left, "an HTTP response head")) {
        throw new Error(`connection ended (${this.#end}) before a response head`);
      }
    }
    const head = new TextDecoder("latin1").decode(this.#take(end));
    const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (!m) throw new Error(`not an HTTP/1.1 response: ${JSON.stringify(head.slice(0, 80))}`);
    const headers = new Map<string, string>();
    for (const line of head.split("\r\n").slice(1)) {
      const i = line.indexOf(":");
      if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
    }
    return { status: Number(m[1]), head, headers };
  }

  /**
   * Sends a valid upgrade request for `path` and checks the 101 answer,
   * including Sec-WebSocket-Accept. With `dribble`, the request goes one byte
   * per write. `after` is written in the same write as the request head.
   */
  async handshake(
    path = "/echo",
    opts: { extra?: string[]; dribble?: boolean; after?: Uint8Array } = {},
  ): Promise<RawResponse> {
    const key = randomKey();
    const request = concat(
      encoder.encode(upgradeRequest(path, { key, extra: opts.extra })),
      opts.after ?? new Uint8Array(0),
    );
    if (opts.dribble) await this.dribble(request);
    else await this.write(request);
    const res = await this.readResponse();
    if (res.status !== 101) throw new Error(`upgrade refused: ${res.head.split("\r\n")[0]}`);
    if (res.headers.get("sec-websocket-accept") !== acceptFor(key)) {
      throw new Error("wrong Sec-WebSocket-Accept from the server");
    }
    return res;
  }

  /** Reads one frame (RFC 6455 §5.2) and unmasks its payload; throws at EOF or timeout. */
  async readFrame(timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    const [b0, b1] = await this.readExactly(2, left());
    let len = b1 & 0x7f;
    if (len === 126) {
      const e = await this.readExactly(2, left());
      len = (e[0] << 8) | e[1];
    } else if (len === 127) {
      const e = await this.readExactly(8, left());
      len = Number(new DataView(e.buffer, e.byteOffset).getBigUint64(0));
    }
    const masked = (b1 & 0x80) !== 0;
    const key = masked ? await this.readExactly(4, left()) : null;
    const payload = await this.readExactly(len, left());
    if (key) { for (let i = 0; i < payload.length; i++) payload[i] ^= key[i % 4]; }
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload };
  }

  /**
   * Reads frames until a close frame and returns its code (1005 when empty)
   * and reason; frames before it are returned in `before`.
   */
  async readClose(
    timeoutMs = DEFAULT_READ_TIMEOUT_MS,
  ): Promise<{ code: number; reason: string; before: RawFrame[]; frame: RawFrame }> {
    const deadline = Date.now() + timeoutMs;
    const before: RawFrame[] = [];
    while (true) {
      const f = await this.readFrame(Math.max(1, deadline - Date.now()));
      if (f.opcode !== 0x8) {
        before.push(f);
        continue;
      }
      const p = f.payload;
      const code = p.length >= 2 ? (p[0] << 8) | p[1] : 1005;
      const reason = new TextDecoder().decode(p.subarray(2));
      return { code, reason, before, frame: f };
    }
  }

  /**
   * Waits for the connection to end and says how: `eof` or `reset`. Bytes
   * that arrive meanwhile are discarded. Throws after `timeoutMs`.
   */
  async expectEnd(timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<EndKind> {
    const deadline = Date.now() + timeoutMs;
    this.#buf = new Uint8Array(0);
    while (await this.#fill(Math.max(1, deadline - Date.now()), "the connection to end")) {
      this.#buf = new Uint8Array(0);
    }
    return this.#end!;
  }

  /** Resolves if nothing arrives (and the connection stays up) for `ms`; throws otherwise. */
  async expectSilence(ms: number): Promise<void> {
    try {
      await this.#fill(ms, "silence");
    } catch {
      return; // Timed out: silence, as expected. The read stays pending for later.
    }
    throw new Error(
      this.#end
        ? `connection ended (${this.#end}) instead of staying silent`
        : `got bytes instead of silence: ${toHex(this.#buf.slice(0, 32))}`,
    );
  }

  /** How the connection ended, or null while it is up (as far as reads have seen). */
  get end(): EndKind | null {
    return this.#end;
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Closes the connection and lets a pending read settle. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#pending?.catch(() => {});
  }
}

function findCrlfCrlf(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) {
      return i + 4;
    }
  }
  return -1;
}

/**
 * A fake server on loopback: accepts one TCP connection at a time and hands
 * it over as a {@linkcode RawPeer}, for testing our client against
 * hand-written responses.
 */
export class RawServer implements AsyncDisposable {
  /** The listener, on 127.0.0.1 and a free port. */
  readonly listener: Deno.Listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  #peers: RawPeer[] = [];

  /** The bound port. */
  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  /** A ws:// URL for `path` on this server. */
  url(path = "/echo"): URL {
    return new URL(`ws://127.0.0.1:${this.port}${path}`);
  }

  /** Accepts the next connection. */
  async accept(): Promise<RawPeer> {
    const peer = new RawPeer(await this.listener.accept());
    this.#peers.push(peer);
    return peer;
  }

  /**
   * Accepts a connection, reads its upgrade request and answers it with a
   * 101 whose Sec-WebSocket-Accept is right, plus `extra` header lines (or
   * with `response(key)` verbatim). Returns the peer and the request head.
   */
  async acceptUpgrade(
    opts: { extra?: string[]; response?: (key: string) => string; after?: Uint8Array } = {},
  ): Promise<{ peer: RawPeer; request: string }> {
    const peer = await this.accept();
    const deadline = Date.now() + DEFAULT_READ_TIMEOUT_MS;
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      head += new TextDecoder("latin1").decode(
        await peer.readExactly(1, Math.max(1, deadline - Date.now())),
      );
    }
    const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? "";
    const response = opts.response?.(key) ?? [
      "HTTP/1.1 101 Switching Protocols",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Accept: ${acceptFor(key)}`,
      ...(opts.extra ?? []),
      "",
      "",
    ].join("\r\n");
    await peer.write(concat(encoder.encode(response), opts.after ?? new Uint8Array(0)));
    return { peer, request: head };
  }

  /** Closes the listener and every accepted connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.listener.close();
    } catch {
      // Already closed.
    }
    for (const p of this.#peers) await p[Symbol.asyncDispose]();
  }
}

/**
 * A TCP listener that plays a server: for each connection it runs `serve`,
 * which may answer the handshake by hand or do nothing at all. Its URL
 * is `ws://127.0.0.1:PORT/echo`; disposing it closes every connection.
 */
export function fakeServer(serve: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serve(conn).catch(() => {});
    }
  })().catch(() => {});
  return {
    url: `ws://127.0.0.1:${listener.addr.port}/echo`,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      await loop;
    },
  };
}
