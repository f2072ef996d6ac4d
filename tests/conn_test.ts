/**
 * WebSocketConn on real loopback sockets, with a raw peer on the other end:
 * the client-side rules, the closing handshake from our side, the send-queue
 * bound, the async iterator, and what happens on every way out.
 */

import assert from "node:assert/strict";
import { MemoryBudget } from "../lib/ws/budget.ts";
import { type ConnOptions, type Message, type Role, WebSocketConn } from "../lib/ws/conn.ts";
import { dial } from "../lib/client/dial.ts";
import { HandshakeError } from "../lib/ws/errors.ts";
import { closePayload, concat, frame, RawPeer, RawServer } from "./helpers/raw.ts";
import { sleep, TimeoutError, waitFor } from "./helpers/wait.ts";

const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** A WebSocketConn on one end of a loopback TCP pair and a raw peer on the other. */
interface Pair extends AsyncDisposable {
  ws: WebSocketConn;
  peer: RawPeer;
  /** Whether the peer must mask (our end is a server). */
  mask: boolean;
}

async function pair(role: Role, options: Partial<ConnOptions> = {}): Promise<Pair> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [dialed, accepted] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port }),
    listener.accept(),
  ]);
  const ours = role === "server" ? accepted : dialed;
  const peer = new RawPeer(role === "server" ? dialed : accepted);
  const ws = new WebSocketConn(ours, { role, closeTimeout: 300, ...options });
  return {
    ws,
    peer,
    mask: role === "server",
    async [Symbol.asyncDispose]() {
      ws.abort("test over");
      await ws.closed;
      await peer[Symbol.asyncDispose]();
    },
  };
}

// ---------------------------------------------------------------------------
// Client-side rules, against a hand-written server

Deno.test("dial(): a masked server frame makes the client send 1002 and end TCP", async () => {
  await using fake = new RawServer();
  const [ws, { peer }] = await Promise.all([
    dial(fake.url()),
    fake.acceptUpgrade(),
  ]);
  await peer.write(frame(TEXT, "masked by a server", { mask: true }));
  const close = await peer.readClose();
  assert.equal(close.code, 1002);
  assert.equal(close.frame.masked, true, "a client's close frame is masked");
  assert.ok(["eof", "reset"].includes(await peer.expectEnd()));
  peer.close();
  const info = await ws.closed;
  assert.equal(info.code, 1002);
  assert.equal(info.cause, "protocol-error");
  assert.equal(info.clean, false);
});

Deno.test("dial(): frames sent in the same write as the 101 are delivered", async () => {
  await using fake = new RawServer();
  const after = concat(frame(TEXT, "first"), frame(BINARY, "second"));
  const [ws, { peer }] = await Promise.all([
    dial(fake.url()),
    fake.acceptUpgrade({ after }),
  ]);
  const got: Message[] = [];
  for await (const msg of ws) {
    got.push(msg);
    if (got.length === 2) break;
  }
  assert.deepEqual(got, ["first", new TextEncoder().encode("second")]);
  const closing = ws.close();
  assert.equal((await peer.readClose()).code, 1000);
  await peer.write(frame(CLOSE, closePayload(1000)));
  peer.close();
  assert.equal((await closing).clean, true);
});

Deno.test("dial(): frames in the same write as the 101 reach an onmessage set after dial() resolves", async () => {
  await using fake = new RawServer();
  const after = concat(frame(TEXT, "early 1"), frame(TEXT, "early 2"));
  const [ws, { peer }] = await Promise.all([
    dial(fake.url()),
    fake.acceptUpgrade({ after }),
  ]);
  const got: Message[] = [];
  ws.onmessage = (msg) => got.push(msg);
  await peer.write(frame(TEXT, "late"));
  await waitFor(() => got.length >= 3, "three messages", 1_000);
  assert.deepEqual(got, ["early 1", "early 2", "late"]);
  ws.abort("test over");
  await ws.closed;
});

Deno.test("dial() refuses a 101 that breaks RFC 6455 §4.1 with a clear HandshakeError", async (t) => {
  await using fake = new RawServer();
  const cases: [string, Parameters<RawServer["acceptUpgrade"]>[0], RegExp, string[]?][] = [
    [
      "an extension the client did not offer",
      { extra: ["Sec-WebSocket-Extensions: permessage-deflate"] },
      /extension/,
    ],
    [
      "a subprotocol the client did not offer",
      { extra: ["Sec-WebSocket-Protocol: chat"] },
      /subprotocol chat/,
    ],
    [
      "a subprotocol other than the ones offered",
      { extra: ["Sec-WebSocket-Protocol: mqtt"] },
      /subprotocol mqtt/,
      ["chat", "superchat"],
    ],
    [
      "a wrong Sec-WebSocket-Accept",
      {
        response: () =>
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
      },
      /Sec-WebSocket-Accept/,
    ],
    [
      "a missing Sec-WebSocket-Accept",
      {
        response: () =>
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      },
      /Sec-WebSocket-Accept/,
    ],
    [
      "a 200 instead of a 101",
      { response: () => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
      /refused the upgrade: 200/,
    ],
  ];
  for (const [name, answer, message, subprotocols] of cases) {
    await t.step(name, async () => {
      const [result, accepted] = await Promise.allSettled([
        dial(fake.url(), { protocols: subprotocols }),
        fake.acceptUpgrade(answer),
      ]);
      assert.equal(accepted.status, "fulfilled");
      assert.equal(result.status, "rejected");
      const err = (result as PromiseRejectedResult).reason;
      assert.ok(err instanceof HandshakeError, `${err}`);
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n\s+at /, "no stack trace in the message");
      // The client gave up the TCP connection.
      assert.ok(["eof", "reset"].includes(await accepted.value.peer.expectEnd()));
    });
  }
});

Deno.test("a client answers the server's close with the same code and waits for the server to end TCP", async () => {
  await using p = await pair("client");
  await p.peer.write(frame(CLOSE, closePayload(4001, "bye")));
  const answer = await p.peer.readClose();
  assert.equal(answer.code, 4001);
  assert.equal(answer.frame.masked, true);
  await assert.rejects(
    waitFor(p.ws.closed, "the end", 100),
    TimeoutError,
    "waits for the server's FIN",
  );
  p.peer.close();
  const info = await p.ws.closed;
  assert.deepEqual(
    [info.code, info.reason, info.cause, info.clean],
    [4001, "bye", "peer-close", true],
  );
});

// ---------------------------------------------------------------------------
// Closing from our side

for (const role of ["server", "client"] as const) {
  Deno.test(`${role}: close() sends the close frame and waits for the peer's answer`, async () => {
    await using p = await pair(role, { closeTimeout: 10_000 });
    const closing = p.ws.close(1000, "done");
    assert.equal(p.ws.isOpen, false);
    const sent = await p.peer.readClose();
    assert.deepEqual([sent.code, sent.reason], [1000, "done"]);
    await assert.rejects(
      waitFor(closing, "close()", 150),
      TimeoutError,
      "close() waits for the peer",
    );
    // Data the peer sent before its close frame is not delivered any more.
    await p.peer.write(frame(TEXT, "late", { mask: p.mask }));
    await p.peer.write(frame(CLOSE, closePayload(1000), { mask: p.mask }));
    if (role === "server") {
      assert.equal(await p.peer.expectEnd(), "eof", "the server ends TCP once answered");
    } else {
      await assert.rejects(
        waitFor(closing, "close()", 100),
        TimeoutError,
        "the client waits for the FIN",
      );
      p.peer.close();
    }
    const info = await closing;
    assert.deepEqual(
      [info.code, info.reason, info.cause, info.clean],
      [1000, "done", "local-close", true],
    );
    await assert.rejects(p.ws.send("after"), /not open/);
  });

  Deno.test(`${role}: close() to a peer that never answers ends after closeTimeoutMs, not clean`, async () => {
    const closeTimeoutMs = 300;
    await using p = await pair(role, { closeTimeout: closeTimeoutMs });
    const started = Date.now();
    const info = await p.ws.close(4000, "going");
    const took = Date.now() - started;
    assert.ok(took >= closeTimeoutMs - 20, `ended after ${took}ms`);
    assert.ok(took < closeTimeoutMs + 2_000, `ended after ${took}ms`);
    assert.equal(info.clean, false);
    assert.equal(info.code, 1006);
    assert.equal(info.cause, "local-close");
    assert.equal((await p.peer.readClose()).code, 4000);
    assert.equal(await p.peer.expectEnd(), "eof");
  });
}

Deno.test("close() with a code that may not be sent throws and leaves the connection open", async () => {
  await using p = await pair("server");
  for (const code of [1005, 1006, 1015, 999, 5000]) {
    assert.throws(() => p.ws.close(code), RangeError);
    assert.equal(p.ws.isOpen, true, `still open after close(${code})`);
  }
  await p.peer.write(frame(TEXT, "ping?", { mask: true }));
  p.ws.onmessage = (msg) => p.ws.send(msg);
  assert.equal(decode((await p.peer.readFrame()).payload), "ping?");
});

Deno.test("a peer that neither reads nor is read (its close frame waits behind our full queue) ends at the stall timeout", async () => {
  const stallTimeoutMs = 300;
  await using p = await pair("server", { stallTimeout: stallTimeoutMs });
  // The peer does not read: fill the kernel buffers and our queue past the
  // high-water mark, so that we stop reading too.
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 64 && p.ws.bufferedAmount < 4 * chunk.length; i++) {
    p.ws.send(chunk);
    await sleep(5);
  }
  assert.ok(p.ws.bufferedAmount > 0, "the send queue is stuck");
  await p.peer.write(frame(CLOSE, closePayload(1000), { mask: true }));
  const started = Date.now();
  const info = await waitFor(p.ws.closed, "the server to end it", stallTimeoutMs + 3_000);
  const took = Date.now() - started;
  assert.ok(took < stallTimeoutMs + 3_000, `ended after ${took}ms`);
  assert.equal(info.cause, "send-overflow");
  assert.equal(info.code, 1008);
  assert.equal(info.clean, false);
});

Deno.test("a peer that ends TCP mid-message is reported as eof with 1006", async () => {
  await using p = await pair("server");
  await p.peer.write(frame(BINARY, new Uint8Array(100_000), { mask: true }).subarray(0, 50_000));
  p.peer.close();
  const info = await p.ws.closed;
  assert.deepEqual([info.code, info.cause, info.clean], [1006, "eof", false]);
});

// ---------------------------------------------------------------------------
// Flow control and the stall timeout

Deno.test("a peer that sends but never reads: reading pauses, memory stays bounded, and the stall timeout ends it as send-overflow", async (t) => {
  const stallTimeoutMs = 400;
  const sendHighWater = 256 * 1024;
  await t.step("echoes of a flood: input waits while the queue is full", async () => {
    await using p = await pair("server", { stallTimeout: stallTimeoutMs, sendHighWater });
    p.ws.onmessage = (m) => void p.ws.send(m);
    const flood = concat(
      ...Array.from({ length: 256 }, () => frame(BINARY, new Uint8Array(4096), { mask: true })),
    );
    let peak = 0;
    const watch = setInterval(() => peak = Math.max(peak, p.ws.bufferedAmount), 1);
    let offered = 0;
    let ended = false;
    p.ws.closed.then(() => ended = true);
    try {
      // The peer's writes block once TCP pushes back: stop when they stop.
      while (!ended) {
        const write = p.peer.write(flood).then(() => offered += flood.length);
        await waitFor(write, "the peer's write", 500);
      }
    } catch {
      // A write hung for 500 ms, or the connection ended under us.
    } finally {
      clearInterval(watch);
    }
    const info = await p.ws.closed;
    assert.equal(info.cause, "send-overflow");
    assert.equal(info.code, 1008);
    // The queue passed the high-water mark by at most one read's echoes.
    assert.ok(peak <= sendHighWater + 128 * 1024, `peak queue ${peak}`);
    assert.ok(p.ws.traffic.bytesIn < offered, `took ${p.ws.traffic.bytesIn} of ${offered}`);
  });
  await t.step("pongs to a ping flood are output too", async () => {
    await using p = await pair("server", { stallTimeout: stallTimeoutMs, sendHighWater });
    const pings = concat(
      ...Array.from({ length: 8000 }, () => frame(PING, new Uint8Array(125), { mask: true })),
    );
    let peak = 0;
    const watch = setInterval(() => peak = Math.max(peak, p.ws.bufferedAmount), 1);
    let ended = false;
    p.ws.closed.then(() => ended = true);
    try {
      for (let i = 0; i < 100 && !ended; i++) {
        await waitFor(p.peer.write(pings).catch(() => {}), "the peer's write", 500);
      }
    } catch {
      // A write hung for 500 ms: TCP pushes back.
    } finally {
      clearInterval(watch);
    }
    const info = await waitFor(p.ws.closed, "the connection to be failed", 3_000);
    assert.equal(info.cause, "send-overflow");
    assert.ok(peak <= sendHighWater + 128 * 1024, `peak queue ${peak}`);
  });
  await t.step(
    "application sends: send() holds the sender back, then the stall ends it",
    async () => {
      await using p = await pair("server", { stallTimeout: stallTimeoutMs, sendHighWater });
      const message = new Uint8Array(16 * 1024);
      let pending = 0;
      for (let i = 0; i < 2_000 && p.ws.isOpen; i++) {
        try {
          await waitFor(p.ws.send(message), "send()", 50);
        } catch (err) {
          if (!(err instanceof TimeoutError)) throw err;
          pending++;
          break; // backpressure: a well-behaved sender waits here
        }
      }
      assert.equal(pending, 1, "send() stopped resolving once the queue was full");
      const info = await p.ws.closed;
      assert.equal(info.cause, "send-overflow");
      assert.equal(info.clean, false);
      await assert.rejects(p.ws.send(message), /not open/);
    },
  );
  await t.step("a slow peer that keeps reading is never cut", async () => {
    await using p = await pair("server", { stallTimeout: 300, sendHighWater });
    const message = new Uint8Array(64 * 1024);
    let received = 0;
    const reading = (async () => {
      while (received < 80 * message.length) {
        const f = await p.peer.readFrame();
        received += f.payload.length;
        await sleep(10); // ~6 MB/s
      }
    })();
    for (let i = 0; i < 80; i++) await p.ws.send(message);
    await reading;
    assert.equal(p.ws.isOpen, true);
  });
});

Deno.test("a memory budget evicts the connection that holds the most, with 1013", async () => {
  const budget = new MemoryBudget(2 * 1024 * 1024);
  await using big = await pair("server", { budget });
  await using small = await pair("server", { budget });
  const evicted: unknown[] = [];
  budget.onEvict = (owner) => evicted.push(owner);
  small.ws.onmessage = (m) => void small.ws.send(m);
  // A message announced as 8 MiB, of which 3 MiB arrive: the partial message
  // grows as bytes arrive and passes the budget.
  const partial = frame(BINARY, new Uint8Array(8 * 1024 * 1024), { mask: true });
  const written = big.peer.write(partial.subarray(0, 3 * 1024 * 1024)).catch(() => {});
  const info = await big.ws.closed;
  await written;
  assert.deepEqual([info.code, info.cause], [1013, "memory-budget"]);
  assert.equal(budget.evictions, 1);
  assert.deepEqual(evicted, [big.ws], "onEvict is handed the connection itself");
  // The small connection goes on.
  await small.peer.write(frame(TEXT, "still here", { mask: true }));
  assert.equal(decode((await small.peer.readFrame()).payload), "still here");
  assert.ok(budget.used < 64 * 1024, `the budget holds ${budget.used} after the eviction`);
});

Deno.test("a 14-byte header announcing 16 MiB costs the server no more than its first read", async () => {
  const budget = new MemoryBudget(1024 ** 3);
  await using p = await pair("server", { budget });
  await p.peer.write(
    frame(BINARY, new Uint8Array(0), { mask: true, length: 16 * 1024 * 1024 - 1 }),
  );
  await sleep(100);
  assert.ok(budget.used <= 64 * 1024, `held ${budget.used} bytes after a bare header`);
  assert.equal(p.ws.isOpen, true);
});

// ---------------------------------------------------------------------------
// Reading: iterator, handler errors

Deno.test("the async iterator yields messages in order and ends when the connection ends", async () => {
  await using p = await pair("server");
  const got: Message[] = [];
  const reading = (async () => {
    for await (const msg of p.ws) got.push(msg);
  })();
  await p.peer.write(concat(
    frame(TEXT, "a", { mask: true }),
    frame(BINARY, Uint8Array.of(1, 2), { mask: true }),
    frame(TEXT, "c", { mask: true }),
    frame(CLOSE, closePayload(1000), { mask: true }),
  ));
  await reading;
  assert.deepEqual(got, ["a", Uint8Array.of(1, 2), "c"]);
  assert.equal((await p.ws.closed).cause, "peer-close");
});

Deno.test("concurrent next() calls each get their own message", async () => {
  await using p = await pair("server");
  const it = p.ws[Symbol.asyncIterator]();
  const first = it.next();
  const second = it.next();
  await p.peer.write(concat(frame(TEXT, "1", { mask: true }), frame(TEXT, "2", { mask: true })));
  await waitFor(first, "the first next() to get a message", 2_000);
  assert.deepEqual(await first, { value: "1", done: false });
  assert.deepEqual(await second, { value: "2", done: false });
  const third = it.next();
  p.peer.close();
  assert.deepEqual(await third, { value: undefined, done: true });
});

Deno.test("messages queued before the connection ended are still yielded", async () => {
  await using p = await pair("server");
  await p.peer.write(
    concat(frame(TEXT, "kept", { mask: true }), frame(CLOSE, closePayload(1000), { mask: true })),
  );
  await p.ws.closed;
  const got: Message[] = [];
  for await (const msg of p.ws) got.push(msg);
  assert.deepEqual(got, ["kept"]);
});

Deno.test("a reader that falls behind pauses reading instead of queueing without limit", async () => {
  await using p = await pair("server");
  const n = 1000;
  await p.peer.write(
    concat(...Array.from({ length: n }, (_, i) => frame(TEXT, `${i}`, { mask: true }))),
  );
  await sleep(100);
  const parsed = p.ws.traffic.messagesIn;
  assert.ok(parsed < 100, `${parsed} parsed before any was read`);
  let i = 0;
  for await (const msg of p.ws) {
    assert.equal(msg, `${i}`);
    if (++i === n) break;
  }
  assert.equal(i, n);
  assert.equal(p.ws.isOpen, true, "break does not close the connection");
});

Deno.test("an exception thrown by onmessage fails the connection with 1011, not as a socket error", async () => {
  await using p = await pair("server");
  p.ws.onmessage = () => {
    throw new Error("handler bug");
  };
  await p.peer.write(frame(TEXT, "boom", { mask: true }));
  assert.equal((await p.peer.readClose()).code, 1011);
  const info = await p.ws.closed;
  assert.equal(info.code, 1011);
  assert.notEqual(info.cause, "reset");
  assert.match(info.error ?? "", /handler bug/);
});

Deno.test("pings are answered with pongs carrying the same payload, in order with messages", async () => {
  await using p = await pair("client");
  p.ws.onmessage = (msg) => p.ws.send(msg);
  await p.peer.write(concat(frame(PING, "x1"), frame(TEXT, "m"), frame(PING, "")));
  const got = [await p.peer.readFrame(), await p.peer.readFrame(), await p.peer.readFrame()];
  assert.deepEqual(got.map((f) => [f.opcode, decode(f.payload), f.masked]), [
    [PONG, "x1", true],
    [TEXT, "m", true],
    [PONG, "", true],
  ]);
});

Deno.test("a close frame read in the same tick as a failed write ends the connection without an unhandled rejection", async () => {
  // A fake stream: the first write fails with a reset, and the pending read
  // completes right after it with a masked close frame from the peer.
  const closeFrame = frame(CLOSE, closePayload(1000, ""), { mask: true });
  const read = Promise.withResolvers<number | null>();
  let target: Uint8Array | null = null;
  const fake = {
    localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 2 },
    read(p: Uint8Array) {
      target = p;
      return read.promise;
    },
    write() {
      queueMicrotask(() => {
        target!.set(closeFrame);
        read.resolve(closeFrame.length);
      });
      return Promise.reject(new Deno.errors.ConnectionReset("reset by peer"));
    },
    close() {},
    closeWrite() {
      return Promise.resolve();
    },
  } as unknown as Deno.Conn;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    const ws = new WebSocketConn(fake, { role: "server", closeTimeout: 300 });
    ws.send("x").catch(() => {});
    const info = await ws.closed;
    await sleep(50);
    assert.equal(info.cause, "reset");
    assert.deepEqual(unhandled, []);
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
});
