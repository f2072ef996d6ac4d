/**
 * permessage-deflate in slices (lib/ws/compression.ts, lib/ws/outgoing.ts):
 * a large message is compressed and inflated a slice at a time, so that one
 * connection's (de)compression never holds the event loop for long. The
 * compressed bytes are made and checked with node:zlib, not with our code.
 */

import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
import {
  DEFLATE_SLICE,
  INFLATE_SLICE,
  inflation,
  MAX_INFLATING,
  PerMessageDeflate,
} from "../lib/ws/compression.ts";
import type { DeflateParams } from "../lib/ws/deflate.ts";
import { type Message, Progress, Protocol } from "../lib/ws/protocol.ts";
import { concat, frame, type SplitFrame, splitFrames } from "./helpers/raw.ts";

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const TAIL = Uint8Array.of(0, 0, 0xff, 0xff);

const TAKEOVER: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};
const NO_TAKEOVER: DeflateParams = {
  ...TAKEOVER,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
};

/** About `bytes` of JSON-like text, compressible but not trivially. */
function jsonText(bytes: number): string {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const s = JSON.stringify({
      id: i,
      city: ["Zürich", "Ōsaka", "Lyon"][i % 3],
      v: (i * 7919) % 997,
    });
    parts.push(s);
    n += s.length;
  }
  return parts.join(",");
}

/** Raw DEFLATE of `bytes` with a sync flush, its 00 00 FF FF stripped (RFC 7692 §7.2.1), by node:zlib. */
function deflated(bytes: Uint8Array): Uint8Array {
  const out = zlib.deflateRawSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return new Uint8Array(out.subarray(0, out.length - 4));
}

/** Inflates a message's payload with node:zlib (the tail put back, §7.2.2). */
function inflated(payload: Uint8Array): Uint8Array {
  return new Uint8Array(
    zlib.inflateRawSync(Buffer.concat([payload, TAIL]), {
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    }),
  );
}

type Frame = SplitFrame;

/** Splits unmasked server output into frames. */
const frames = splitFrames;

/** A server protocol with permessage-deflate, recording the messages it gets. */
function server(params = TAKEOVER) {
  const messages: Message[] = [];
  const p = new Protocol({
    role: "server",
    deflate: new PerMessageDeflate(params, "server"),
    maxMessageSize: 64 * 1024 * 1024,
  }, { message: (m) => void messages.push(m) });
  return { p, messages };
}

/** Takes output until none is pending, one takeOutput() call at a time; returns the frames and the calls made. */
function drain(p: Protocol): { frames: Frame[]; calls: number } {
  const chunks: Uint8Array[] = [];
  let calls = 0;
  for (;;) {
    const c = p.takeOutput();
    calls++;
    for (const x of c ?? []) {
      chunks.push(x.slice());
      p.written(x.length);
    }
    if (!p.outputPending && c === null) break;
  }
  return { frames: frames(concat(...chunks)), calls };
}

/** The message the data frames make (RFC 7692 §6.1: RSV1 on the first only). */
function assemble(fs: Frame[]): { opcode: number; payload: Uint8Array; compressed: boolean } {
  const data = fs.filter((f) => f.opcode === TEXT || f.opcode === BINARY || f.opcode === CONT);
  assert.ok(data.length > 0, "no data frames");
  assert.notEqual(data[0].opcode, CONT);
  data.slice(1).forEach((f) => {
    assert.equal(f.opcode, CONT, "a continuation follows the first fragment");
    assert.equal(f.rsv1, false, "RSV1 is on the first fragment only");
  });
  assert.ok(data.at(-1)!.fin && data.slice(0, -1).every((f) => !f.fin), "FIN on the last only");
  return {
    opcode: data[0].opcode,
    payload: concat(...data.map((f) => f.payload)),
    compressed: data[0].rsv1,
  };
}

for (
  const [label, params] of [["context takeover", TAKEOVER], [
    "no context takeover",
    NO_TAKEOVER,
  ]] as const
) {
  Deno.test(`a 1 MB compressed message (${label}) goes out in fragments, one slice per takeOutput(), and node:zlib inflates them to it`, () => {
    const { p } = server(params);
    const text = jsonText(1024 * 1024);
    p.send(text);
    assert.ok(p.outputPending, "the message waits to be compressed");
    assert.ok(p.bufferedAmount >= text.length, "its bytes count as buffered meanwhile");
    const { frames: fs, calls } = drain(p);
    const want = Math.ceil(new TextEncoder().encode(text).length / DEFLATE_SLICE);
    assert.ok(calls >= want, `${calls} takeOutput() calls for ${want} slices`);
    const m = assemble(fs);
    assert.equal(m.opcode, TEXT);
    assert.ok(m.compressed);
    assert.ok(fs.length > 1, `${fs.length} frames`);
    assert.equal(new TextDecoder().decode(inflated(m.payload)), text);
    assert.equal(p.bufferedAmount, 0);
    // The next message follows from the same (kept or reset) context.
    p.send(text.slice(0, 1000));
    const next = assemble(drain(p).frames);
    const window = params === TAKEOVER ? Buffer.concat([m.payload, TAIL]) : Buffer.alloc(0);
    const again = zlib.inflateRawSync(Buffer.concat([window, next.payload, TAIL]), {
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    const tail = new TextEncoder().encode(text.slice(0, 1000));
    assert.deepEqual(new Uint8Array(again.subarray(again.length - tail.length)), tail);
  });
}

Deno.test("messages sent behind a message compressed in slices wait for it, a ping goes between its fragments, and the close frame comes last", () => {
  const { p } = server();
  const big = jsonText(800 * 1024);
  p.send(big);
  p.send("after");
  p.send(Uint8Array.of(1, 2, 3));
  // One slice out, then a ping: it may go between fragments (RFC 6455 §5.4).
  const first = p.takeOutput()!.map((c) => c.slice()); // copied: the queue reuses what was written
  for (const c of first) p.written(c.length);
  p.ping(Uint8Array.of(7));
  p.close(1000, "bye");
  const fs = [...frames(concat(...first)), ...drain(p).frames];
  const ping = fs.findIndex((f) => f.opcode === PING);
  const lastFragment = fs.findIndex((f) => f.opcode === CONT && f.fin);
  assert.ok(ping > 0 && ping < lastFragment, `the ping (${ping}) went between the fragments`);
  const rest = fs.slice(lastFragment + 1);
  assert.deepEqual(rest.map((f) => f.opcode), [TEXT, BINARY, CLOSE]);
  assert.equal(rest[0].rsv1, false, "a message under the threshold goes uncompressed");
  assert.equal(new TextDecoder().decode(rest[0].payload), "after");
  assert.equal(
    new TextDecoder().decode(inflated(assemble(fs.slice(0, lastFragment + 1)).payload)),
    big,
  );
});

Deno.test("failing the connection drops a message waiting to be compressed and sends the close frame at once", () => {
  const { p } = server();
  p.send(jsonText(2 * 1024 * 1024));
  p.fail(1011, "internal error", "local-close");
  const fs = drain(p).frames;
  assert.deepEqual(fs.map((f) => f.opcode), [CLOSE]);
  assert.equal(p.bufferedAmount, 0);
});

Deno.test("a peer's message that inflates to 4 MiB is delivered over several turns: process() yields between slices", () => {
  const { p, messages } = server();
  const zeros = new Uint8Array(4 * 1024 * 1024);
  const bytes = frame(BINARY, deflated(zeros), { mask: true, rsv: 4 });
  const target = p.readTarget();
  let off = 0;
  let yields = 0;
  let last: number = Progress.NeedInput;
  while (off < bytes.length || last === Progress.Yield) {
    if (last !== Progress.Yield) {
      const t = off === 0 ? target : p.readTarget();
      const n = Math.min(t.length, bytes.length - off);
      t.set(bytes.subarray(off, off + n));
      p.commit(n);
      off += n;
    }
    last = p.process();
    if (last === Progress.Yield && messages.length === 0) yields++;
  }
  assert.equal(messages.length, 1);
  assert.deepEqual(messages[0], zeros);
  assert.ok(
    yields >= zeros.length / (1024 * 1024) - 1,
    `${yields} yields before a 4 MiB message was whole (the turn budget is 1 MiB)`,
  );
});

Deno.test(`at most ${MAX_INFLATING} messages inflate across turns at once; the next waits for a slot, then goes on`, () => {
  const payload = deflated(new Uint8Array(INFLATE_SLICE * 4));
  const engines = Array.from(
    { length: MAX_INFLATING + 1 },
    () => inflation(new PerMessageDeflate(TAKEOVER, "server"), payload, 1 << 30),
  );
  for (const e of engines) assert.equal(e.step(), "more", "the first slice needs no slot");
  const second = engines.map((e) => e.step());
  assert.deepEqual(second.slice(0, MAX_INFLATING), Array(MAX_INFLATING).fill("more"));
  assert.equal(second[MAX_INFLATING], "wait");
  assert.equal(engines[MAX_INFLATING].last, 0, "a waiting message does no work");
  // One finishes (or is given up): its slot goes to the one waiting.
  engines[0].close();
  assert.equal(engines[MAX_INFLATING].step(), "more");
  let r;
  while ((r = engines[MAX_INFLATING].step()) === "more");
  assert.equal(r, "done");
  assert.equal(engines[MAX_INFLATING].result().length, INFLATE_SLICE * 4);
  for (const e of engines) e.close();
});

Deno.test("a message inflating past the limit stops there (1009) and gives its slot back", () => {
  const payload = deflated(new Uint8Array(INFLATE_SLICE * 8));
  const a = inflation(new PerMessageDeflate(TAKEOVER, "server"), payload, INFLATE_SLICE * 2);
  let r;
  while ((r = a.step()) === "more");
  assert.equal(r, "over");
  assert.ok(a.total <= INFLATE_SLICE * 2 + 64 * 1024, `${a.total} bytes inflated`);
  // Every slot is free again: MAX_INFLATING messages can all go past their first slice.
  const others = Array.from(
    { length: MAX_INFLATING },
    () => inflation(new PerMessageDeflate(TAKEOVER, "server"), payload, 1 << 30),
  );
  for (const o of others) o.step();
  assert.deepEqual(others.map((o) => o.step()), Array(MAX_INFLATING).fill("more"));
  for (const o of others) o.close();
});
