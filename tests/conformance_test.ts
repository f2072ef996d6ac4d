/**
 * RFC 6455 conformance of our server, checked with raw bytes: every failure
 * rule (close code on the wire, TCP ended, `close` logged with its cause) and
 * the framing behaviour a peer relies on.
 */

import assert from "node:assert/strict";
import { closePayload, concat, frame, hex, randomBytes, RawPeer, toHex } from "./helpers/raw.ts";
import { startServer } from "./helpers/process.ts";
import { type LogEvent, startTestServer, type TestServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/wait.ts";

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/** Bound on seeing the close frame and the end of TCP after a violation. */
const FAIL_BOUND_MS = 3_000;

const m = { mask: true } as const;

/** Opens a raw upgraded connection to `server` and finds its `open` event. */
async function open(server: TestServer): Promise<{ peer: RawPeer; opened: LogEvent }> {
  const peer = await RawPeer.connect(server.port);
  try {
    await peer.handshake();
    const remote = `127.0.0.1:${(peer.conn.localAddr as Deno.NetAddr).port}`;
    const opened = await server.waitForEvent("open", (e) => e.remote === remote);
    return { peer, opened };
  } catch (err) {
    await peer[Symbol.asyncDispose]();
    throw err;
  }
}

/**
 * Sends `bytes` after the handshake and checks the whole failure path: the
 * server's close frame carries `code` (unmasked, FIN, no RSV), TCP ends
 * within a bound, and the server logged `close` with `code` and `cause`.
 */
async function expectFailure(
  server: TestServer,
  bytes: Uint8Array,
  code: number,
  cause: "protocol-error" | "message-too-big",
  echoes = 0,
): Promise<void> {
  const { peer, opened } = await open(server);
  await using _ = peer;
  await peer.write(bytes);
  const close = await peer.readClose(FAIL_BOUND_MS);
  assert.equal(close.code, code, `close code for ${toHex(bytes.slice(0, 16))}`);
  assert.equal(close.before.length, echoes, "frames before the close frame");
  assert.equal(close.frame.masked, false, "a server frame is not masked");
  assert.equal(close.frame.fin, true);
  assert.equal(close.frame.rsv, 0);
  assert.ok(close.reason.length > 0, "the close frame says why");
  const end = await peer.expectEnd(FAIL_BOUND_MS);
  assert.ok(end === "eof" || end === "reset");
  peer.close(); // as a client does on EOF; the server may wait for it (lingering close)
  const ev = await server.waitForEvent("close", (e) => e.id === opened.id);
  assert.equal(ev.code, code);
  assert.equal(ev.cause, cause);
  assert.equal(ev.clean, false);
}

Deno.test("the server fails the connection with 1002 for each framing rule a client breaks", async (t) => {
  await using server = startTestServer();
  const cases: [string, Uint8Array, number?][] = [
    ["an unmasked client frame", frame(TEXT, "hi")],
    ["RSV1 set", frame(TEXT, "hi", { ...m, rsv: 4 })],
    ["RSV2 set", frame(TEXT, "hi", { ...m, rsv: 2 })],
    ["RSV3 set", frame(TEXT, "hi", { ...m, rsv: 1 })],
    ["RSV bits on a ping", frame(PING, "", { ...m, rsv: 7 })],
    ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op): [string, Uint8Array] => [
      `reserved opcode 0x${op.toString(16)}`,
      frame(op, "x", m),
    ]),
    ["a ping of 126 bytes", frame(PING, new Uint8Array(126), m)],
    ["a close of 126 bytes", frame(CLOSE, closePayload(1000, "x".repeat(124)), m)],
    ["a pong of 126 bytes", frame(PONG, new Uint8Array(126), m)],
    ["a fragmented ping", frame(PING, "a", { ...m, fin: false })],
    ["a fragmented close", frame(CLOSE, closePayload(1000), { ...m, fin: false })],
    ["a continuation with nothing to continue", frame(CONT, "x", m)],
    [
      "a final continuation with nothing to continue",
      concat(frame(TEXT, "done", m), frame(CONT, "x", m)),
      1, // "done" is echoed first
    ],
    [
      "a text frame inside a fragmented message",
      concat(frame(TEXT, "a", { ...m, fin: false }), frame(TEXT, "b", m)),
    ],
    [
      "a binary frame inside a fragmented message",
      concat(frame(BINARY, "a", { ...m, fin: false }), frame(BINARY, "b", m)),
    ],
    ["a close payload of 1 byte", frame(CLOSE, Uint8Array.of(0x03), m)],
    // A length of 2^63: the top bit of the 64-bit length must be 0 (§5.2).
    ["a 64-bit length with the top bit set", hex("82 ff 80 00 00 00 00 00 00 00 37 fa 21 3d")],
    ["a 16-bit length that fits in 7 bits", frame(BINARY, "abc", { ...m, lengthForm: 16 })],
  ];
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
    cases.push([`close code ${code} on the wire`, frame(CLOSE, closePayload(code), m)]);
  }
  for (const [name, bytes, echoes] of cases) {
    await t.step(name, () => expectFailure(server, bytes, 1002, "protocol-error", echoes));
  }
  assert.equal(server.log.all("error").length, 0, server.log.summary());
});

Deno.test("the server fails the connection with 1007 for invalid UTF-8", async (t) => {
  await using server = startTestServer();
  await t.step(
    "in a single text frame",
    () => expectFailure(server, frame(TEXT, hex("48 69 ff"), m), 1007, "protocol-error"),
  );
  await t.step(
    "an overlong encoding of '/'",
    () => expectFailure(server, frame(TEXT, hex("c0 af"), m), 1007, "protocol-error"),
  );
  await t.step(
    "a UTF-16 surrogate encoded as UTF-8",
    () => expectFailure(server, frame(TEXT, hex("ed a0 80"), m), 1007, "protocol-error"),
  );
  await t.step(
    "a code point above U+10FFFF",
    () => expectFailure(server, frame(TEXT, hex("f4 90 80 80"), m), 1007, "protocol-error"),
  );
  await t.step("a sequence split across fragments that turns invalid", () =>
    expectFailure(
      server,
      // "€" is e2 82 ac; the second fragment continues e2 82 with '(' instead.
      concat(frame(TEXT, hex("41 e2 82"), { ...m, fin: false }), frame(CONT, hex("28"), m)),
      1007,
      "protocol-error",
    ));
  await t.step("a sequence cut short by the final fragment", () =>
    expectFailure(
      server,
      concat(frame(TEXT, hex("41 e2"), { ...m, fin: false }), frame(CONT, hex("82"), m)),
      1007,
      "protocol-error",
    ));
  await t.step(
    "in a first fragment without FIN: the server fails without waiting for more",
    // Only this frame is sent, and the peer then waits: the close must come
    // from what the first fragment already shows.
    () =>
      expectFailure(
        server,
        frame(TEXT, hex("ce ba e1 bd b9 ce bc f4 90 80 80"), { ...m, fin: false }),
        1007,
        "protocol-error",
      ),
  );
  await t.step("in a close reason", () =>
    expectFailure(
      server,
      frame(CLOSE, closePayload(1000, hex("ff fe")), m),
      1007,
      "protocol-error",
    ));
  await t.step("a valid sequence split across fragments is reassembled", async () => {
    const { peer } = await open(server);
    await using _ = peer;
    await peer.write(frame(TEXT, hex("e2 82"), { ...m, fin: false }));
    await peer.write(frame(CONT, hex("ac"), m));
    const f = await peer.readFrame();
    assert.equal(f.opcode, TEXT);
    assert.equal(new TextDecoder().decode(f.payload), "€");
  });
  await t.step("a leading BOM in a text message is kept, not stripped", async () => {
    const { peer } = await open(server);
    await using _ = peer;
    await peer.write(frame(TEXT, "\ufeffbom", m));
    assert.equal(toHex((await peer.readFrame()).payload), "efbbbf626f6d");
    await peer.write(frame(TEXT, "\ufeff", { ...m, fin: false }));
    await peer.write(frame(CONT, "x", m));
    assert.equal(toHex((await peer.readFrame()).payload), "efbbbf78");
  });
});

Deno.test("the server fails the connection with 1009 for a message over maxMessageSize, on the header", async (t) => {
  const limit = 64 * 1024;
  await using server = startTestServer({ maxMessageSize: limit });
  // Only headers are sent, never the payload they announce: the close must
  // come from the length alone.
  await t.step("a single frame one byte over the limit", () =>
    expectFailure(
      server,
      frame(BINARY, new Uint8Array(0), { ...m, length: limit + 1 }),
      1009,
      "message-too-big",
    ));
  await t.step("a single frame announcing 2^53 bytes", () =>
    expectFailure(
      server,
      frame(TEXT, new Uint8Array(0), { ...m, length: 2n ** 53n }),
      1009,
      "message-too-big",
    ));
  await t.step("fragments that add up to more than the limit", () =>
    expectFailure(
      server,
      concat(
        frame(BINARY, new Uint8Array(limit - 10), { ...m, fin: false }),
        frame(CONT, new Uint8Array(5), { ...m, fin: false }),
        frame(CONT, new Uint8Array(0), { ...m, length: 6 }),
      ),
      1009,
      "message-too-big",
    ));
  await t.step("a message of exactly the limit is echoed", async () => {
    const { peer } = await open(server);
    await using _ = peer;
    const data = randomBytes(limit);
    await peer.write(frame(BINARY, data.subarray(0, 1000), { ...m, fin: false }));
    await peer.write(frame(CONT, data.subarray(1000), m));
    const f = await peer.readFrame();
    assert.equal(f.payload.length, limit);
    assert.deepEqual(f.payload, data);
  });
});

Deno.test("control frames interleaved in a fragmented message are answered and the message reassembled", async () => {
  await using server = startTestServer();
  const { peer } = await open(server);
  await using _ = peer;
  await peer.write(frame(TEXT, "Hel", { ...m, fin: false }));
  await peer.write(frame(PING, "p1", m));
  await peer.write(frame(CONT, "lo", { ...m, fin: false }));
  await peer.write(concat(frame(PING, hex("00 ff 10"), m), frame(PONG, "unsolicited", m)));
  await peer.write(frame(CONT, ", world", m));
  const frames = [await peer.readFrame(), await peer.readFrame(), await peer.readFrame()];
  assert.deepEqual(frames.map((f) => f.opcode), [PONG, PONG, TEXT]);
  assert.equal(new TextDecoder().decode(frames[0].payload), "p1");
  assert.equal(toHex(frames[1].payload), "00ff10");
  assert.equal(new TextDecoder().decode(frames[2].payload), "Hello, world");
  assert.ok(frames.every((f) => f.fin && !f.masked && f.rsv === 0));
});

Deno.test("many frames in one write are each echoed, in order", async () => {
  await using server = startTestServer();
  const { peer } = await open(server);
  await using _ = peer;
  const n = 200;
  await peer.write(concat(...Array.from({ length: n }, (_, i) => frame(TEXT, `msg ${i}`, m))));
  for (let i = 0; i < n; i++) {
    const f = await peer.readFrame();
    assert.equal(new TextDecoder().decode(f.payload), `msg ${i}`);
  }
});

Deno.test("a handshake and frames dribbled one byte per write are read whole", async (t) => {
  await using server = startTestServer();
  await t.step("the head one byte at a time, then a frame one byte at a time", async () => {
    await using peer = await RawPeer.connect(server.port);
    await peer.handshake("/echo", { dribble: true });
    await peer.dribble(frame(TEXT, "dribbled", m));
    assert.equal(new TextDecoder().decode((await peer.readFrame()).payload), "dribbled");
    const big = randomBytes(70_000);
    await peer.dribble(frame(BINARY, big, m), 997);
    assert.deepEqual((await peer.readFrame()).payload, big);
  });
  await t.step("frames in the same write as the head are not lost", async () => {
    await using peer = await RawPeer.connect(server.port);
    const after = concat(frame(TEXT, "one", m), frame(BINARY, "two", m), frame(PING, "3", m));
    await peer.handshake("/echo", { after });
    const got = [await peer.readFrame(), await peer.readFrame(), await peer.readFrame()];
    assert.deepEqual(got.map((f) => [f.opcode, new TextDecoder().decode(f.payload)]), [
      [TEXT, "one"],
      [BINARY, "two"],
      [PONG, "3"],
    ]);
  });
  await t.step("head and frames dribbled together, byte by byte", async () => {
    await using peer = await RawPeer.connect(server.port);
    await peer.handshake("/echo", { dribble: true, after: frame(TEXT, "tail", m) });
    assert.equal(new TextDecoder().decode((await peer.readFrame()).payload), "tail");
  });
});

Deno.test("messages at the length boundaries echo back with minimal length headers", async (t) => {
  await using server = startTestServer();
  const { peer } = await open(server);
  await using _ = peer;
  for (const size of [0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024]) {
    await t.step(`${size} bytes`, async () => {
      const data = randomBytes(size);
      const wire = frame(BINARY, data, m);
      await peer.write(wire);
      const f = await peer.readFrame(10_000);
      assert.equal(f.opcode, BINARY);
      assert.equal(f.payload.length, size);
      assert.deepEqual(f.payload, data);
      const text = "é".repeat(size >> 1) + (size & 1 ? "a" : "");
      await peer.write(frame(TEXT, text, m));
      const g = await peer.readFrame(10_000);
      assert.equal(g.opcode, TEXT);
      assert.equal(new TextDecoder().decode(g.payload), text);
    });
  }
  await t.step("the header uses the minimal length form", async () => {
    for (const [size, lenByte] of [[125, 125], [126, 126], [65535, 126], [65536, 127]]) {
      await peer.write(frame(BINARY, new Uint8Array(size), m));
      const head = await peer.readExactly(2);
      assert.equal(head[1], lenByte, `length byte for ${size}`);
      await peer.readExactly(lenByte === 126 ? 2 + size : lenByte === 127 ? 8 + size : size);
    }
  });
});

Deno.test("an unsolicited pong is ignored", async () => {
  await using server = startTestServer();
  const { peer, opened } = await open(server);
  await using _ = peer;
  await peer.write(frame(PONG, "nobody asked", m));
  await peer.expectSilence(300);
  await peer.write(frame(TEXT, "still here", m));
  assert.equal(new TextDecoder().decode((await peer.readFrame()).payload), "still here");
  assert.equal(server.log.all("close", (e) => e.id === opened.id).length, 0);
});

Deno.test("the server answers a close with the same code, then ends TCP", async (t) => {
  await using server = startTestServer();
  for (
    const [name, payload, code, reason] of [
      ["code 1000 with a reason", closePayload(1000, "done"), 1000, "done"],
      ["code 1001", closePayload(1001), 1001, ""],
      ["application code 4321", closePayload(4321, "app"), 4321, "app"],
      ["an empty close is answered with 1000", new Uint8Array(0), 1000, ""],
    ] as const
  ) {
    await t.step(name, async () => {
      const { peer, opened } = await open(server);
      await using _ = peer;
      await peer.write(frame(CLOSE, payload, m));
      const answer = await peer.readClose();
      assert.equal(answer.code, code);
      assert.equal(answer.before.length, 0);
      assert.equal(await peer.expectEnd(FAIL_BOUND_MS), "eof", "the server ends TCP first");
      const ev = await server.waitForEvent("close", (e) => e.id === opened.id);
      assert.equal(ev.cause, "peer-close");
      assert.equal(ev.clean, true);
      assert.equal(ev.code, payload.length === 0 ? 1005 : code);
      assert.equal(ev.reason, reason);
    });
  }
  await t.step("frames after the close frame are ignored", async () => {
    const { peer, opened } = await open(server);
    await using _ = peer;
    // A text frame and even a broken frame after the close change nothing.
    await peer.write(concat(
      frame(CLOSE, closePayload(1000), m),
      frame(TEXT, "ignored", m),
      frame(TEXT, "unmasked and ignored"),
    ));
    const answer = await peer.readClose();
    assert.equal(answer.code, 1000);
    assert.deepEqual(answer.before, []);
    await peer.expectEnd(FAIL_BOUND_MS);
    const ev = await server.waitForEvent("close", (e) => e.id === opened.id);
    assert.equal(ev.cause, "peer-close");
    assert.equal(ev.clean, true);
  });
});

Deno.test("TCP ending without a close frame is logged as eof with code 1006", async () => {
  await using server = startTestServer();
  const { peer, opened } = await open(server);
  await peer.write(frame(TEXT, "half", { ...m, fin: false }));
  await peer[Symbol.asyncDispose]();
  const ev = await server.waitForEvent("close", (e) => e.id === opened.id);
  assert.equal(ev.code, 1006);
  assert.equal(ev.cause, "eof");
  assert.equal(ev.clean, false);
});

Deno.test("a client that sends but never reads: the server stops reading it, then ends it with send-overflow at the stall timeout", async () => {
  await using server = startTestServer({ stallTimeout: 1_000 });
  const { peer, opened } = await open(server);
  await using _ = peer;
  // 1 MiB messages echo into a queue that nobody drains. The server stops
  // reading past its high-water mark, so TCP pushes back and the peer's
  // writes stop completing: stop offering once a write hangs for 2 s.
  const message = frame(BINARY, new Uint8Array(1024 * 1024), m);
  let written = 0;
  try {
    while (server.log.all("close").length === 0) {
      await waitFor(peer.write(message), "a 1 MiB write to complete", 2_000);
      written += message.length;
    }
  } catch {
    // A write hung (TCP pushes back), or the server ended the connection under us: expected.
  }
  const ev = await server.waitForEvent("close", (e) => e.id === opened.id, { timeoutMs: 10_000 });
  assert.equal(ev.cause, "send-overflow");
  assert.equal(ev.code, 1008);
  // The server took a few messages, then left the rest in the kernel's buffers.
  const taken = server.server.metrics.totalTraffic().bytesIn;
  assert.ok(taken <= 8 * 1024 * 1024, `the server took ${taken} bytes of messages`);
  assert.ok(taken < written, `took ${taken} of ${written}`);
});

Deno.test("server.ts run as a program logs a violation as close with its code and cause in JSON", async () => {
  await using server = await startServer(["--max-message-size", "1KiB"]);
  await using peer = await RawPeer.connect(server.port);
  await peer.handshake();
  const opened = await server.proc.waitForEvent("open");
  await peer.write(frame(BINARY, new Uint8Array(0), { ...m, length: 2048 }));
  assert.equal((await peer.readClose()).code, 1009);
  await peer.expectEnd();
  peer.close();
  const ev = await server.proc.waitForEvent("close", (e) => e.id === opened.id);
  assert.equal(ev.cause, "message-too-big");
  assert.equal(ev.code, 1009);
  assert.equal(ev.clean, false);
  server.proc.kill("SIGTERM");
  assert.equal((await server.proc.wait()).code, 0);
  assert.ok(server.proc.events.filter((e) => e.event === "stopped").length === 1);
});
