/**
 * Fuzzing (issue: bad input survived). Seeded random and mutated inputs go to
 * the pure parsers, which may only ever refuse with HandshakeError or
 * ProtocolViolation, and to a live server on loopback, which must answer each
 * connection with an HTTP error, a close frame with a valid code, or a clean
 * end, while a good client keeps echoing and nothing is left open.
 *
 * The seed is printed; rerun a failure with `FUZZ_SEED=<seed> deno test …`.
 */

import assert from "node:assert/strict";
import { parseClosePayload } from "../lib/ws/close.ts";
import { dial } from "../lib/client/dial.ts";
import { HandshakeError, ProtocolViolation } from "../lib/ws/errors.ts";
import { readFrameHeader } from "../lib/ws/frame.ts";
import { checkUpgradeRequest } from "../lib/ws/server_handshake.ts";
import { checkUpgradeResponse } from "../lib/ws/client_handshake.ts";
import { parseRequestHead, parseResponseHead } from "../lib/http/head.ts";
import {
  acceptFor,
  closePayload,
  concat,
  frame,
  randomKey,
  upgradeRequest,
} from "./helpers/raw.ts";
import { startTestServer } from "./helpers/server.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

/** The fixed seed; override with FUZZ_SEED to explore or to replay. */
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x6a09e667) >>> 0;
console.log(`fuzz seed: ${SEED} (replay with FUZZ_SEED=${SEED})`);

/** mulberry32: a small, fast, seedable PRNG; good enough to pick mutations. */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

const enc = new TextEncoder();

// ---------------------------------------------------------------------------
// Input generators

/** A valid upgrade request, as lines, with optional extras. */
function handshakeLines(rng: Rng): string[] {
  const extra: string[] = [];
  if (rng.chance(0.3)) extra.push("Origin: http://127.0.0.1");
  if (rng.chance(0.3)) extra.push("Sec-WebSocket-Protocol: chat, superchat");
  if (rng.chance(0.2)) extra.push("Sec-WebSocket-Extensions: permessage-deflate");
  if (rng.chance(0.2)) extra.push("User-Agent: fuzz/1.0");
  return upgradeRequest("/echo", { key: randomKey(), extra }).split("\r\n").slice(0, -2);
}

/** A mutated upgrade request: flipped bytes, truncation, duplicated or huge headers… */
function mutateHandshake(rng: Rng): Uint8Array {
  const lines = handshakeLines(rng);
  const ops = 1 + rng.int(3);
  for (let i = 0; i < ops; i++) {
    switch (rng.int(8)) {
      case 0: // duplicate a header line (Host twice, two keys, two versions…)
        lines.splice(1 + rng.int(lines.length - 1), 0, rng.pick(lines.slice(1)));
        break;
      case 1: // drop a line
        if (lines.length > 1) lines.splice(rng.int(lines.length), 1);
        break;
      case 2: // a huge header
        lines.push(`X-Big: ${"a".repeat(rng.pick([100, 5000, 9000, 20000]))}`);
        break;
      case 3: // change the case of a line
        {
          const j = rng.int(lines.length);
          lines[j] = rng.chance(0.5) ? lines[j].toUpperCase() : lines[j].toLowerCase();
        }
        break;
      case 4: // obs-fold, whitespace before a colon, an empty name
        lines.splice(
          1 + rng.int(lines.length - 1),
          0,
          rng.pick([" folded", "Bad : x", ": nameless", "\tx", "X-Ctl: a\x01b"]),
        );
        break;
      case 5: // another method, version or target
        lines[0] = rng.pick([
          "POST /echo HTTP/1.1",
          "GET /echo HTTP/1.0",
          "GET /echo HTTP/2.0",
          "GET http://x/echo HTTP/1.1",
          "GET  /echo HTTP/1.1",
          "GET /echo",
          "GET /%00 HTTP/1.1",
          "GET /metrics HTTP/1.1",
          "GET /nope HTTP/1.1",
        ]);
        break;
      case 6: // another version or key value
        lines.push(
          rng.pick([
            "Sec-WebSocket-Version: 8",
            "Sec-WebSocket-Version: x",
            "Sec-WebSocket-Key: short",
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            "Origin: null",
            "Origin: http://evil.example",
          ]),
        );
        break;
      default: // nothing at line level
        break;
    }
  }
  let bytes: Uint8Array = enc.encode(lines.join("\r\n") + "\r\n\r\n");
  // Byte-level damage.
  const flips = rng.int(3);
  for (let i = 0; i < flips; i++) {
    const j = rng.int(bytes.length);
    bytes[j] = rng.chance(0.5) ? bytes[j] ^ (1 << rng.int(8)) : rng.u32() & 0xff;
  }
  if (rng.chance(0.15)) bytes = bytes.slice(0, rng.int(bytes.length));
  if (rng.chance(0.1)) bytes = concat(bytes.slice(0, rng.int(bytes.length)), enc.encode("\n\n"));
  return bytes;
}

/** A stream of valid client frames: messages, fragments, pings, maybe a close. */
function validFrames(rng: Rng, mask = true): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const n = 1 + rng.int(6);
  for (let i = 0; i < n; i++) {
    switch (rng.int(5)) {
      case 0:
        frames.push(frame(0x1, "hello ünïcode €", { mask }));
        break;
      case 1:
        frames.push(frame(0x2, rng.bytes(rng.pick([0, 1, 125, 126, 300, 70_000])), { mask }));
        break;
      case 2:
        frames.push(
          frame(0x1, "frag", { mask, fin: false }),
          frame(0x9, rng.bytes(rng.int(126)), { mask }),
          frame(0x0, "mented", { mask }),
        );
        break;
      case 3:
        frames.push(frame(0x9, rng.bytes(rng.int(126)), { mask }));
        break;
      default:
        frames.push(frame(0xa, "", { mask }));
    }
  }
  if (rng.chance(0.3)) frames.push(frame(0x8, closePayload(1000, "bye"), { mask }));
  return frames;
}

/** Mutates a frame stream: flipped bits, rewritten lengths and opcodes, cuts, inserts. */
function mutateFrames(rng: Rng, frames: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = frames.map((f) => new Uint8Array(f));
  const ops = rng.int(4);
  for (let i = 0; i < ops; i++) {
    const f = parts[rng.int(parts.length)];
    switch (rng.int(6)) {
      case 0: // flip a bit anywhere
        f[rng.int(f.length)] ^= 1 << rng.int(8);
        break;
      case 1: // a random opcode, maybe RSV bits
        f[0] = (f[0] & 0x80) | (rng.chance(0.2) ? rng.int(8) << 4 : 0) | rng.int(16);
        break;
      case 2: // a random 7-bit length, or a random extended length
        if (rng.chance(0.5)) f[1] = (f[1] & 0x80) | rng.int(128);
        else if (f.length > 10) {
          f[1] = (f[1] & 0x80) | 127;
          for (let j = 2; j < 10; j++) f[j] = rng.chance(0.7) ? 0 : rng.u32() & 0xff;
        }
        break;
      case 3: // toggle FIN or MASK
        if (rng.chance(0.5)) f[0] ^= 0x80;
        else f[1] ^= 0x80;
        break;
      case 4: // random bytes inserted between frames
        parts.splice(rng.int(parts.length + 1), 0, rng.bytes(1 + rng.int(20)));
        break;
      default: // duplicate a frame
        parts.splice(rng.int(parts.length + 1), 0, f);
    }
  }
  let out = concat(...parts);
  if (rng.chance(0.2)) out = out.slice(0, rng.int(out.length + 1));
  return out;
}

/** Asserts `fn` either returns or throws one of `allowed`; nothing else. */
function onlyThrows(
  allowed: (abstract new (...args: never[]) => Error)[],
  fn: () => unknown,
  what: () => string,
): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (allowed.some((type) => err instanceof type)) return false;
    throw new Error(`${what()} threw ${err instanceof Error ? err.stack : err}`);
  }
}

const hexOf = (b: Uint8Array) =>
  Array.from(b.slice(0, 64), (x) => x.toString(16).padStart(2, "0")).join("");

// ---------------------------------------------------------------------------
// (a) The pure parsers

Deno.test("fuzz: parseRequestHead() and checkUpgradeRequest() only ever throw HandshakeError", () => {
  const rng = new Rng(SEED);
  let accepted = 0;
  const n = 5000;
  for (let i = 0; i < n; i++) {
    const bytes = rng.chance(0.1) ? rng.bytes(rng.int(300)) : mutateHandshake(rng);
    onlyThrows([HandshakeError], () => {
      const head = parseRequestHead(bytes);
      const { key } = checkUpgradeRequest(head, { protocols: ["chat"] });
      accepted++;
      assert.equal(atob(key).length, 16);
    }, () => `case ${i} ${JSON.stringify(new TextDecoder("latin1").decode(bytes.slice(0, 200)))}`);
  }
  // The mutations must leave some requests valid, or the generator is broken.
  assert.ok(accepted > n / 20 && accepted < n, `${accepted} of ${n} accepted`);
});

Deno.test("fuzz: parseResponseHead() and checkUpgradeResponse() only ever throw HandshakeError", () => {
  const rng = new Rng(SEED ^ 0x1);
  let accepted = 0;
  const n = 3000;
  for (let i = 0; i < n; i++) {
    const key = randomKey();
    const lines = [
      "HTTP/1.1 101 Switching Protocols",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Accept: ${acceptFor(key)}`,
    ];
    if (rng.chance(0.2)) lines.push(rng.pick(["Sec-WebSocket-Protocol: chat", " folded"]));
    const bytes = enc.encode(lines.join("\r\n") + "\r\n\r\n");
    for (let f = rng.int(4); f > 0; f--) bytes[rng.int(bytes.length)] = rng.u32() & 0xff;
    const cut = rng.chance(0.1) ? bytes.slice(0, rng.int(bytes.length)) : bytes;
    onlyThrows([HandshakeError], () => {
      checkUpgradeResponse(parseResponseHead(cut), key, { protocols: ["chat"] });
      accepted++;
    }, () => `case ${i} ${JSON.stringify(new TextDecoder("latin1").decode(cut))}`);
  }
  // The mutations must leave some responses valid, or the generator is broken.
  assert.ok(accepted > n / 20 && accepted < n, `${accepted} of ${n} accepted`);
});

Deno.test("fuzz: readFrameHeader() only ever throws ProtocolViolation and returns sane headers", () => {
  const rng = new Rng(SEED ^ 0x2);
  const n = 20_000;
  let headers = 0;
  for (let i = 0; i < n; i++) {
    const expectMasked = rng.chance(0.5);
    const buf = rng.chance(0.3)
      ? rng.bytes(rng.int(20))
      : mutateFrames(rng, validFrames(rng, expectMasked)).slice(0, 64);
    const start = rng.int(Math.min(buf.length, 4) + 1);
    const end = start + rng.int(buf.length - start + 1);
    onlyThrows([ProtocolViolation], () => {
      const h = readFrameHeader(buf, start, end, expectMasked);
      if (h === null) return;
      headers++;
      assert.ok(h.headerLength >= 2 && h.headerLength <= 14 && h.headerLength <= end - start);
      assert.ok(Number.isSafeInteger(h.payloadLength) && h.payloadLength >= 0);
      assert.equal(h.masked, expectMasked);
      assert.ok(h.opcode <= 2 || (h.opcode >= 8 && h.opcode <= 10), `opcode ${h.opcode}`);
      if (h.opcode >= 8) assert.ok(h.fin && h.payloadLength <= 125);
    }, () => `case ${i} ${hexOf(buf.subarray(start, end))} masked=${expectMasked}`);
  }
  assert.ok(headers > n / 10, `only ${headers} of ${n} parsed`);
});

Deno.test("fuzz: parseClosePayload() only ever throws ProtocolViolation", () => {
  const rng = new Rng(SEED ^ 0x3);
  for (let i = 0; i < 5000; i++) {
    const payload = rng.chance(0.5)
      ? rng.bytes(rng.int(126))
      : closePayload(rng.int(6000), rng.bytes(rng.int(20)));
    onlyThrows([ProtocolViolation], () => {
      const { code, reason } = parseClosePayload(payload);
      assert.ok(typeof reason === "string" && Number.isInteger(code));
    }, () => `case ${i} ${hexOf(payload)}`);
  }
});

// ---------------------------------------------------------------------------
// (b) A live server

/** The close codes a server may put on the wire (RFC 6455 §7.4), checked independently. */
function wireCodeOk(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** What the server sent on one fuzz connection, judged. */
type Verdict =
  | { kind: "http"; status: number }
  | { kind: "close"; code: number }
  | { kind: "eof" };

/**
 * Judges everything the server sent: an HTTP error response; or a 101, then
 * well-formed unmasked frames and at most one close frame with a valid code,
 * last; or nothing at all. Throws on anything else.
 */
function judge(bytes: Uint8Array): Verdict {
  if (bytes.length === 0) return { kind: "eof" };
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 4096));
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(text);
  if (!status) throw new Error(`neither HTTP nor empty: ${hexOf(bytes)}`);
  const code = Number(status[1]);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd < 0) throw new Error(`a truncated response head: ${JSON.stringify(text)}`);
  if (code !== 101) {
    if (code < 400 && !(code === 200 && /^HTTP\/1\.1 200 OK/.test(text))) {
      throw new Error(`unexpected status ${code}`);
    }
    return code === 200 ? { kind: "eof" } : { kind: "http", status: code };
  }
  // Frames after the 101.
  let pos = headEnd + 4;
  while (pos < bytes.length) {
    if (bytes.length - pos < 2) throw new Error("a truncated frame header from the server");
    const b0 = bytes[pos], b1 = bytes[pos + 1];
    if (b0 & 0x70) throw new Error("RSV bits from the server");
    if (b1 & 0x80) throw new Error("a masked frame from the server");
    let len = b1 & 0x7f;
    let off = pos + 2;
    if (len === 126) {
      len = (bytes[off] << 8) | bytes[off + 1];
      off += 2;
    } else if (len === 127) {
      len = Number(new DataView(bytes.buffer, bytes.byteOffset + off).getBigUint64(0));
      off += 8;
    }
    if (off + len > bytes.length) throw new Error("a truncated frame from the server");
    const opcode = b0 & 0x0f;
    if (![0x1, 0x2, 0x8, 0xa].includes(opcode)) throw new Error(`server opcode ${opcode}`);
    if (opcode === 0x8) {
      if (off + len !== bytes.length) throw new Error("bytes after the server's close frame");
      if (len === 1) throw new Error("a 1-byte close payload from the server");
      const c = len === 0 ? 1005 : (bytes[off] << 8) | bytes[off + 1];
      if (len > 0 && !wireCodeOk(c)) throw new Error(`server close code ${c}`);
      return { kind: "close", code: c };
    }
    pos = off + len;
  }
  return { kind: "eof" };
}

/** Sends `input` in a few random pieces, then reads everything until the server ends TCP. */
async function fuzzConnection(
  port: number,
  rng: Rng,
  input: Uint8Array,
): Promise<{ bytes: Uint8Array; end: "eof" | "reset" }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const received: Uint8Array[] = [];
    let end: "eof" | "reset" = "eof";
    const reading = (async () => {
      const buf = new Uint8Array(64 * 1024);
      while (true) {
        let n: number | null;
        try {
          n = await conn.read(buf);
        } catch {
          end = "reset";
          return;
        }
        if (n === null) return;
        received.push(buf.slice(0, n));
      }
    })();
    try {
      let off = 0;
      while (off < input.length) {
        const size = rng.chance(0.5) ? input.length - off : 1 + rng.int(input.length - off);
        const piece = input.subarray(off, off + size);
        let w = 0;
        while (w < piece.length) w += await conn.write(piece.subarray(w));
        off += size;
      }
      // Most peers end their side at once; others first give the server time
      // to act on what it has (a valid idle connection may stay open).
      if (rng.chance(0.2)) await sleep(200);
      await conn.closeWrite();
    } catch {
      // The server may have ended the connection already; that is allowed.
    }
    // Bounded: a server that does not end the connection fails the test.
    await waitFor(reading, `the server to end the connection; input ${hexOf(input)}`, 12_000);
    return { bytes: concat(...received), end };
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

Deno.test("fuzz: a live server answers hundreds of hostile connections properly while a good client keeps echoing", async () => {
  const rng = new Rng(SEED ^ 0x4);
  await using server = startTestServer({ maxMessageSize: 64 * 1024, handshakeTimeout: 3_000 });

  // A good client echoing alongside, the whole time.
  const ws = await dial(server.url);
  const echoes: string[] = [];
  ws.onmessage = (msg) => echoes.push(String(msg));
  let sent = 0;
  const goodClient = setInterval(() => {
    if (ws.isOpen) ws.send(`good ${sent++}`).catch(() => {});
  }, 5);

  const total = 400;
  const concurrency = 16;
  const verdicts: Record<string, number> = {};
  const resets = { afterData: 0, bare: 0 };
  let next = 0;
  try {
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const kind = rng.int(4);
        const input = kind === 0
          ? mutateHandshake(rng)
          : kind === 1
          ? concat(enc.encode(upgradeRequest()), mutateFrames(rng, validFrames(rng)))
          : kind === 2
          ? concat(mutateHandshake(rng), mutateFrames(rng, validFrames(rng)))
          : concat(enc.encode(upgradeRequest()), rng.bytes(rng.int(200)));
        const { bytes, end } = await fuzzConnection(server.port, rng, input);
        let v: Verdict;
        try {
          v = judge(bytes);
        } catch (err) {
          throw new Error(`connection ${i}: ${(err as Error).message}; input ${hexOf(input)}`);
        }
        if (end === "reset") {
          // RST may follow what the server sent (it closed with our bytes unread),
          // but must not replace an answer.
          if (bytes.length === 0) resets.bare++;
          else resets.afterData++;
        }
        const label = v.kind === "http"
          ? `http ${v.status}`
          : v.kind === "close"
          ? `close ${v.code}`
          : "eof";
        verdicts[label] = (verdicts[label] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    clearInterval(goodClient);
  }
  console.log(`${total} connections:`, verdicts, "resets:", resets);

  // The good client got every echo, in order, and is still open.
  await waitFor(() => echoes.length >= sent, "every echo of the good client", 5_000);
  assert.ok(ws.isOpen, "the good client is still connected");
  assert.ok(sent > 10, `the good client sent ${sent} messages`);
  assert.deepEqual(echoes, Array.from({ length: sent }, (_, i) => `good ${i}`));
  const info = await ws.close(1000, "done");
  assert.equal(info.clean, true);

  assert.equal(resets.bare, 0, "no connection was reset without an answer");
  assert.deepEqual(server.log.all("error"), [], "the server logged no error");
  // 1011 would mean hostile input reached an internal error, not a named violation.
  assert.deepEqual(server.log.all("close", (e) => e.code === 1011), [], "no internal error");
  // Every connection is gone: /metrics shows none open.
  let open = NaN;
  await waitFor(
    async () => (open = await server.metric("keepalive_ws_connections_open")) === 0,
    "keepalive_ws_connections_open to drop to 0",
    5_000,
    { context: () => `keepalive_ws_connections_open is ${open}` },
  );
  assert.equal(open, 0, "connections left open");
  const opens = server.log.all("open").length;
  assert.equal(server.log.all("close").filter((e) => e.code !== undefined).length >= opens, true);
  // The inputs reached every path: refusals, failures and clean ends.
  assert.ok(Object.keys(verdicts).some((k) => k.startsWith("http 4")), "some refused");
  assert.ok(Object.keys(verdicts).some((k) => k.startsWith("close 100")), "some failed");
});
