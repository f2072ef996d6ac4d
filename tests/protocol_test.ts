/**
 * The sans-I/O protocol core, with no socket, no timer and no sleep: bytes
 * in, events and bytes out. Frames are written by hand (tests/helpers/raw.ts),
 * not by the code under test.
 */

import assert from "node:assert/strict";
import {
  type Message,
  Progress,
  Protocol,
  type ProtocolOptions,
  State,
} from "../lib/ws/protocol.ts";
import { closePayload, concat, frame, splitFrames, TEST_MASK_KEY } from "./helpers/raw.ts";

const CONT = 0x0;
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;
const m = { mask: true } as const;
const MiB = 1024 * 1024;

/** A server-side protocol whose events are recorded. */
function server(options: Partial<ProtocolOptions> = {}) {
  const events: (["message", Message] | ["ping" | "pong", string])[] = [];
  const p = new Protocol({ role: "server", ...options }, {
    message: (msg) => void events.push(["message", msg]),
    ping: (b) => void events.push(["ping", new TextDecoder().decode(b)]),
    pong: (b) => void events.push(["pong", new TextDecoder().decode(b)]),
  });
  return { p, events };
}

/** Feeds `bytes` through readTarget()/commit() in reads of at most `chunk` bytes, processing after each. */
function feed(p: Protocol, bytes: Uint8Array, chunk = bytes.length): number {
  let last: number = Progress.NeedInput;
  for (let off = 0; off < bytes.length;) {
    const target = p.readTarget();
    assert.ok(target.length > 0, "readTarget() is never empty");
    const n = Math.min(target.length, chunk, bytes.length - off);
    target.set(bytes.subarray(off, off + n));
    p.commit(n);
    off += n;
    do last = p.process(); while (last === Progress.Yield);
  }
  return last;
}

/** Takes every output byte, reporting it written, and splits it into frames (unmasked view). */
function output(
  p: Protocol,
): { opcode: number; fin: boolean; masked: boolean; payload: Uint8Array }[] {
  const chunks: Uint8Array[] = [];
  let c: Uint8Array[] | null;
  while ((c = p.takeOutput()) !== null) {
    for (const x of c) {
      chunks.push(x.slice());
      p.written(x.length);
    }
  }
  return splitFrames(concat(...chunks));
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function closeCode(f: { payload: Uint8Array }): number {
  return (f.payload[0] << 8) | f.payload[1];
}

// ---------------------------------------------------------------------------
// Frames in, events out

Deno.test("Protocol delivers text and binary messages, several per read, the same however the bytes are split", () => {
  const bytes = concat(
    frame(TEXT, "héllo", m),
    frame(BINARY, Uint8Array.of(1, 2, 3), m),
    frame(TEXT, "x".repeat(70_000), m),
    frame(BINARY, new Uint8Array(200_000).fill(7), m),
    frame(TEXT, "", m),
  );
  for (const chunk of [bytes.length, 4096, 7, 1]) {
    const { p, events } = server();
    feed(p, bytes, chunk);
    assert.deepEqual(events.map((e) => e[0]), Array(5).fill("message"), `chunk ${chunk}`);
    assert.equal(events[0][1], "héllo");
    assert.deepEqual(events[1][1], Uint8Array.of(1, 2, 3));
    assert.equal(events[2][1], "x".repeat(70_000));
    assert.deepEqual(events[3][1], new Uint8Array(200_000).fill(7));
    assert.equal(events[4][1], "");
    assert.equal(p.traffic.messagesIn, 5);
    assert.equal(p.traffic.bytesIn, 6 + 3 + 70_000 + 200_000);
  }
});

Deno.test("Protocol assembles fragments with pings between them, answers each ping with its payload", () => {
  const { p, events } = server();
  feed(
    p,
    concat(
      frame(TEXT, "frag", { ...m, fin: false }),
      frame(PING, "p1", m),
      frame(CONT, "men", { ...m, fin: false }),
      frame(CONT, "ted", m),
      frame(PONG, "unsolicited", m),
    ),
  );
  assert.deepEqual(events, [["ping", "p1"], ["message", "fragmented"], ["pong", "unsolicited"]]);
  const out = output(p);
  assert.deepEqual(out.map((f) => [f.opcode, text(f.payload), f.masked]), [[PONG, "p1", false]]);
});

Deno.test("Protocol accepts a character split across fragments and across reads", () => {
  const euro = new TextEncoder().encode("€"); // e2 82 ac
  const { p, events } = server();
  feed(
    p,
    concat(
      frame(TEXT, euro.subarray(0, 1), { ...m, fin: false }),
      frame(CONT, euro.subarray(1), m),
    ),
    1,
  );
  assert.deepEqual(events, [["message", "€"]]);
});

// ---------------------------------------------------------------------------
// Violations: one path, close code on the wire, named cause

function expectFail(
  bytes: Uint8Array,
  code: number,
  cause: string,
  options: Partial<ProtocolOptions> = {},
) {
  const { p, events } = server(options);
  feed(p, bytes);
  assert.equal(p.state, State.Closing);
  assert.equal(p.failed, true);
  assert.deepEqual([p.info?.code, p.info?.cause, p.info?.clean], [code, cause, false]);
  const out = output(p);
  assert.equal(out.length, 1, "nothing but the close frame is sent");
  assert.equal(out[0].opcode, CLOSE);
  assert.equal(closeCode(out[0]), code);
  assert.ok(out[0].payload.length > 2, "the close frame says why");
  return { p, events };
}

Deno.test("Protocol fails an unmasked client frame, RSV bits and a continuation with nothing to continue with 1002", () => {
  expectFail(frame(TEXT, "x"), 1002, "protocol-error");
  expectFail(frame(TEXT, "x", { ...m, rsv: 4 }), 1002, "protocol-error");
  expectFail(frame(CONT, "x", m), 1002, "protocol-error");
  expectFail(
    concat(frame(TEXT, "a", { ...m, fin: false }), frame(BINARY, "b", m)),
    1002,
    "protocol-error",
  );
});

Deno.test("Protocol fails an oversized message with 1009 from its header, before any payload arrives", () => {
  const header = frame(BINARY, new Uint8Array(0), { ...m, length: 2048 });
  const { p } = expectFail(header, 1009, "message-too-big", { maxMessageSize: 1024 });
  assert.match(p.info!.reason, /2048 bytes exceeds the limit of 1024/);
});

Deno.test("Protocol caps the fragments of one message: an empty-continuation flood ends at 16,384 with 1009", () => {
  const flood = concat(
    frame(TEXT, "a", { ...m, fin: false }),
    ...Array.from({ length: 20_000 }, () => frame(CONT, new Uint8Array(0), { ...m, fin: false })),
  );
  const { p } = expectFail(flood, 1009, "message-too-big");
  assert.match(p.info!.reason, /more than 16384 fragments/);
  assert.ok(p.held < 64 * 1024, `held ${p.held} bytes`);
});

Deno.test("Protocol counts every frame at least at its header size toward the limit, and says so", () => {
  // 1-byte fragments cost 7 bytes each on the wire (2 + 4 mask + 1).
  const frames = Array.from(
    { length: 200 },
    (_, i) => frame(i === 0 ? TEXT : CONT, "a", { ...m, fin: false }),
  );
  const { p } = expectFail(concat(...frames), 1009, "message-too-big", { maxMessageSize: 1000 });
  assert.match(
    p.info!.reason,
    /in \d+ frames exceeds the limit of 1000 with frame headers counted/,
  );
  // A single frame of exactly the limit is still fine.
  const ok = server({ maxMessageSize: 1000 });
  feed(ok.p, frame(BINARY, new Uint8Array(1000), m));
  assert.equal(ok.events.length, 1);
});

Deno.test("Protocol fails invalid UTF-8 with 1007 at the first bad byte, before a large frame is complete", () => {
  const bad = new Uint8Array(100_000).fill(0x61);
  bad[10] = 0xff;
  const bytes = frame(TEXT, bad, m);
  const { p } = server();
  feed(p, bytes.subarray(0, 2048)); // the header and the first 2 KiB only
  assert.equal(p.failed, true, "failed before the rest arrived");
  assert.deepEqual([p.info?.code, p.info?.cause], [1007, "protocol-error"]);
  // A truncated character at the end of a message is invalid too.
  expectFail(
    concat(
      frame(TEXT, Uint8Array.of(0x61, 0xe2), { ...m, fin: false }),
      frame(CONT, Uint8Array.of(0x82), m),
    ),
    1007,
    "protocol-error",
  );
});

Deno.test("Protocol keeps the echoes queued before a violation, and dropOutput() frees them when asked", () => {
  const { p } = server();
  p.send("queued echo");
  feed(p, frame(TEXT, "x")); // unmasked: a violation
  assert.deepEqual(
    output(p).map((f) => f.opcode === CLOSE ? closeCode(f) : text(f.payload)),
    ["queued echo", 1002],
  );
  const q = server().p;
  q.send("x".repeat(100_000));
  q.dropOutput();
  q.fail(1013, "server memory budget exhausted", "memory-budget");
  assert.deepEqual(output(q).map((f) => f.opcode), [CLOSE]);
});

// ---------------------------------------------------------------------------
// Memory follows the bytes that arrived

Deno.test("Protocol allocates a large payload as it arrives, never from the header's announced length", () => {
  const { p } = server();
  const header = frame(BINARY, new Uint8Array(0), { ...m, length: 16 * MiB - 1 });
  feed(p, header);
  assert.ok(p.held <= 64 * 1024, `a bare header holds ${p.held} bytes`);
  // Then 3 MiB of it: at most four times what arrived (the final frame's growth).
  const part = new Uint8Array(3 * MiB);
  feed(p, part, 64 * 1024);
  assert.ok(p.held <= 4 * part.length + 64 * 1024, `3 MiB of payload hold ${p.held} bytes`);
  assert.equal(p.state, State.Open);
});

Deno.test("Protocol grows a final frame's buffer straight to the frame's end when the next step would nearly reach it", () => {
  const { p } = server();
  // Earlier traffic grows the read buffer to 64 KiB, so the 1 MiB frame's
  // first read brings its header and 65,522 bytes of payload: 4× steps from
  // there (262,088, 1,048,352) would need one more that copies it all.
  const small = frame(BINARY, new Uint8Array(1000), m);
  feed(p, concat(...Array.from({ length: 300 }, () => small)));
  const readBuffer = p.held;
  assert.equal(readBuffer, 64 * 1024);
  const message: number[] = [];
  const bytes = frame(BINARY, new Uint8Array(MiB), m);
  for (let off = 0; off < bytes.length;) {
    const target = p.readTarget();
    const n = Math.min(target.length, bytes.length - off);
    target.set(bytes.subarray(off, off + n));
    p.commit(n);
    off += n;
    while (p.process() === Progress.Yield);
    if (p.held > readBuffer && !message.includes(p.held - readBuffer)) {
      message.push(p.held - readBuffer);
    }
  }
  assert.equal(message.at(-1), MiB);
  assert.ok(
    message.every((size) => size === MiB || size * 2 < MiB),
    `message buffer sizes ${message.join(", ")}`,
  );
});

Deno.test("Protocol counts a buffer failed away under a read in flight as held until that read is committed", () => {
  const { p } = server();
  feed(p, frame(BINARY, new Uint8Array(0), { ...m, length: 8 * MiB }));
  feed(p, new Uint8Array(2 * MiB), 256 * 1024);
  // A read goes straight into the message buffer, then the connection fails
  // (as the memory budget fails it) before that read completes.
  const target = p.readTarget();
  const before = p.held;
  assert.ok(before >= 2 * MiB, `2 MiB of payload hold ${before} bytes`);
  p.fail(1013, "server memory budget exhausted", "memory-budget");
  assert.equal(target.byteLength, 0, "the buffer was released (detached)");
  assert.ok(
    p.held >= before - 64 * 1024,
    `still ${p.held} of ${before} held while the read is in flight`,
  );
  p.commit(0);
  assert.ok(p.held < 64 * 1024, `${p.held} bytes held once the read completed`);
});

Deno.test("Protocol holds a fragmented message in one buffer: a million 1-byte fragments cost bytes, not objects", () => {
  const { p, events } = server({ maxFragments: 2_000_000, maxMessageSize: 64 * MiB });
  const one = frame(CONT, "a", { ...m, fin: false });
  const batch = concat(...Array.from({ length: 10_000 }, () => one));
  feed(p, frame(TEXT, "a", { ...m, fin: false }));
  for (let i = 0; i < 100; i++) feed(p, batch);
  assert.ok(p.held < 4 * MiB, `1,000,001 fragments hold ${p.held} bytes`);
  feed(p, frame(CONT, "", m));
  assert.equal(events.length, 1);
  assert.equal((events[0][1] as string).length, 1_000_001);
});

// ---------------------------------------------------------------------------
// Closing

Deno.test("Protocol answers a peer's close with the same code (1000 for an empty one) and reads nothing after it", () => {
  for (
    const [payload, sent, answered] of [[closePayload(4001, "bye"), 4001, 4001], [
      new Uint8Array(0),
      1005,
      1000,
    ]] as const
  ) {
    const { p, events } = server();
    feed(p, concat(frame(CLOSE, payload, m), frame(TEXT, "after the close", m)));
    assert.deepEqual(events, []);
    assert.equal(p.state, State.Closing);
    assert.deepEqual([p.info?.code, p.info?.cause, p.info?.clean], [sent, "peer-close", true]);
    const out = output(p);
    assert.deepEqual(out.map((f) => [f.opcode, closeCode(f)]), [[CLOSE, answered]]);
    assert.deepEqual(p.receiveEof(), p.info);
    assert.equal(p.state, State.Closed);
  }
});

Deno.test("Protocol's own close: messages after it are dropped, the peer's answer makes it clean, EOF without one does not", () => {
  const { p, events } = server();
  p.close(1001, "going", "shutdown");
  assert.throws(() => p.send("late"), /not open/);
  feed(p, concat(frame(TEXT, "dropped", m), frame(CLOSE, closePayload(1001), m)));
  assert.deepEqual(events, []);
  assert.deepEqual(p.receiveEof(), {
    code: 1001,
    reason: "going",
    cause: "shutdown",
    clean: true,
  });

  const q = server().p;
  q.close(1000, "", "local-close");
  const info = q.receiveEof();
  assert.deepEqual([info.code, info.cause, info.clean], [1006, "local-close", false]);

  const r = server().p;
  assert.deepEqual([r.receiveEof().code, r.info?.cause], [1006, "eof"]);
  assert.throws(() => server().p.close(1006), RangeError);
});

// ---------------------------------------------------------------------------
// Flow control, turns, roles

Deno.test("Protocol stops consuming input while its output is above the high-water mark, and resumes once written", () => {
  const many = concat(...Array.from({ length: 100 }, () => frame(BINARY, new Uint8Array(1000), m)));
  const h = new Protocol({ role: "server", sendHighWater: 10_000 }, {
    message: (msg) => h.send(msg),
  });
  h.receive(many);
  assert.equal(h.process(), Progress.Paused);
  assert.equal(h.traffic.messagesIn, 10, "ten 1,004-byte echoes reach the mark");
  assert.ok(h.bufferedAmount >= 10_000 && h.bufferedAmount < 11_004);
  assert.equal(h.process(), Progress.Paused, "still paused until written");
  let drains = 0;
  while (h.traffic.messagesIn < 100) {
    for (const c of h.takeOutput() ?? []) h.written(c.length);
    drains++;
    while (h.process() === Progress.Yield) { /* next turn */ }
  }
  assert.equal(drains, 9, "ten more messages per drain");
});

Deno.test("Protocol yields after a turn's budget of work, and pauses while input is held", () => {
  const { p, events } = server({ turnBudget: 64 * 1024 });
  p.receive(concat(...Array.from({ length: 1000 }, () => frame(TEXT, "t", m))));
  assert.equal(p.process(), Progress.Yield);
  // 7,000 bytes received, plus 1 KiB of cost per frame: the 58th frame passes 64 KiB.
  assert.equal(events.length, 58);
  p.holdInput = true;
  assert.equal(p.process(), Progress.Paused);
  p.holdInput = false;
  while (p.process() === Progress.Yield) { /* next turn */ }
  assert.equal(events.length, 1000);
});

Deno.test("Protocol as a client masks what it sends and fails a masked frame from the server", () => {
  const c = new Protocol({ role: "client" }, { message: () => {} });
  c.send("hi");
  c.ping(Uint8Array.of(1, 2));
  const out = output(c);
  assert.deepEqual(out.map((f) => [f.opcode, f.masked]), [[TEXT, true], [PING, true]]);
  assert.equal(text(out[0].payload), "hi");
  c.receive(frame(TEXT, "masked", { mask: true, key: TEST_MASK_KEY }));
  c.process();
  assert.deepEqual([c.info?.code, c.info?.cause], [1002, "protocol-error"]);
});

Deno.test("Protocol coalesces sends into one chunk and hands large server payloads out uncopied", () => {
  const { p } = server();
  for (let i = 0; i < 100; i++) p.send(`m${i}`);
  const small = p.takeOutput()!;
  assert.equal(small.length, 1, "100 small frames in one chunk");
  for (const c of small) p.written(c.length);
  const big = new Uint8Array(128 * 1024);
  p.send(big);
  const chunks = p.takeOutput()!;
  assert.ok(chunks.some((c) => c.buffer === big.buffer), "the payload itself is queued");
  assert.equal(p.bufferedAmount, 10 + big.length, "a 10-byte header and the payload");
});

Deno.test("Protocol gives its send buffer back once written, and never one still being written", () => {
  const a = server().p, b = server().p;
  const idle = a.held;
  a.send("first");
  const lent = a.takeOutput()!;
  assert.ok(a.held > idle, "the queued frame's buffer is held while it is written");
  // While a's buffer is out, b's frames must not land in it.
  b.send("other");
  const bOut = b.takeOutput()!;
  assert.notEqual(bOut[0].buffer, lent[0].buffer, "a buffer being written is nobody's to reuse");
  assert.equal(text(splitFrames(lent[0].slice())[0].payload), "first");
  for (const c of lent) a.written(c.length);
  assert.equal(a.held, idle, "an idle connection holds no send buffer");
  // The buffer given back serves the next send, of either connection.
  b.written(bOut[0].length);
  a.send("second");
  const again = a.takeOutput()!;
  assert.ok(
    [lent[0].buffer, bOut[0].buffer].includes(again[0].buffer),
    "a written buffer is reused",
  );
  assert.equal(text(splitFrames(again[0].slice())[0].payload), "second");
});

Deno.test("Protocol hands its read buffer to the next connection only when no read writes into it", () => {
  const end = { code: 1006, reason: "", cause: "eof", clean: false } as const;
  // Ended between reads: its buffer is free, and the next connection's reads land in it.
  const a = server().p;
  feed(a, frame(TEXT, "hi", m));
  const aBuffer = a.readTarget().buffer;
  a.commit(0);
  a.finish(end);
  const b = server().p;
  assert.equal(b.readTarget().buffer, aBuffer, "a free read buffer is reused");
  // Ended with a read in flight: that read still writes into the buffer, so nobody else gets it.
  const inFlight = b.readTarget();
  b.finish(end);
  const c = server().p;
  assert.notEqual(c.readTarget().buffer, inFlight.buffer, "a buffer under a read is not handed on");
  assert.ok(b.held >= inFlight.length, "and it is still counted as held");
});
