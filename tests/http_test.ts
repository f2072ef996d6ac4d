import assert from "node:assert/strict";
import { HandshakeError } from "../lib/ws/errors.ts";
import { INVALID_RESPONSE } from "../lib/http/errors.ts";
import { parseRequestHead, parseResponseHead } from "../lib/http/head.ts";
import { type Reader, readHead, writeAll } from "../lib/http/io.ts";

const enc = new TextEncoder();
const HEAD = enc.encode(
  "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
);
// A masked text frame "Hi" and a masked close frame, as a client would send.
// deno-fmt-ignore
const FRAMES = new Uint8Array([
  0x81, 0x82, 0x01, 0x02, 0x03, 0x04, 0x49, 0x6b,
  0x88, 0x80, 0x0a, 0x0b, 0x0c, 0x0d,
]);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A reader that hands out `data` in reads of at most `chunk` bytes, then EOF. */
function fakeReader(
  data: Uint8Array,
  chunk: number,
): Reader & {
  reads: number;
  consumed: number;
} {
  let off = 0;
  return {
    reads: 0,
    consumed: 0,
    read(p: Uint8Array): Promise<number | null> {
      this.reads++;
      if (off >= data.length) return Promise.resolve(null);
      const n = Math.min(chunk, p.length, data.length - off);
      p.set(data.subarray(off, off + n));
      off += n;
      this.consumed += n;
      return Promise.resolve(n);
    },
  };
}

/** Drains what a reader has left after readHead, to prove nothing was consumed. */
async function drain(r: Reader): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64);
  for (let n; (n = await r.read(buf)) !== null;) parts.push(buf.slice(0, n));
  return concat(...parts);
}

/**
 * A reader that hands out `data` in reads of at most `chunk` bytes and then,
 * instead of EOF, a read that never settles, as a peer that sent its head and
 * waits for the answer. `stalled` resolves when that read is asked for, so a
 * test can prove that readHead() did not wait for more bytes.
 */
function stallingReader(data: Uint8Array, chunk: number): Reader & {
  stalled: Promise<void>;
  unread(): Uint8Array;
} {
  let off = 0;
  let onStall!: () => void;
  const stalled = new Promise<void>((resolve) => (onStall = resolve));
  return {
    stalled,
    unread: () => data.slice(off),
    read(p: Uint8Array): Promise<number | null> {
      if (off >= data.length) {
        onStall();
        return new Promise(() => {});
      }
      const n = Math.min(chunk, p.length, data.length - off);
      p.set(data.subarray(off, off + n));
      off += n;
      return Promise.resolve(n);
    },
  };
}

/** readHead() on a stalling reader: fails at once if it asks for a read past the data. */
function readHeadAtOnce(
  reader: ReturnType<typeof stallingReader>,
  kind: "request" | "response",
): Promise<{ head: Uint8Array; rest: Uint8Array } | null> {
  const waited = reader.stalled.then(() => {
    throw new Error("readHead() waited for more bytes after the empty line");
  });
  return Promise.race([readHead(reader, { maxHeadSize: 8192, kind }), waited]);
}

Deno.test("readHead() assembles a head that dribbles in one byte per read", async () => {
  const reader = fakeReader(HEAD, 1);
  const got = await readHead(reader, { maxHeadSize: 8192 });
  assert.deepEqual(got?.head, HEAD);
  assert.deepEqual(got?.rest, new Uint8Array(0));
  assert.equal(reader.reads, HEAD.length);
});

Deno.test("readHead() returns the frames after the head exactly, in any chunking", async () => {
  const wire = concat(HEAD, FRAMES);
  for (
    const chunk of [1, 2, 3, 7, HEAD.length - 1, HEAD.length + 3, wire.length]
  ) {
    const reader = fakeReader(wire, chunk);
    const got = await readHead(reader, { maxHeadSize: 8192 });
    assert.ok(got !== null);
    assert.deepEqual(got.head, HEAD, `chunk ${chunk}`);
    // Whatever readHead did not hand back must still be in the stream.
    assert.deepEqual(
      concat(got.rest, await drain(reader)),
      FRAMES,
      `chunk ${chunk}`,
    );
  }
});

Deno.test("readHead() keeps everything after the head when it all comes in one read", async () => {
  const big = crypto.getRandomValues(new Uint8Array(20000));
  const reader = fakeReader(concat(HEAD, big), 1 << 20);
  const got = await readHead(reader, { maxHeadSize: 8192 });
  assert.ok(got !== null);
  assert.deepEqual(got.head, HEAD);
  assert.deepEqual(concat(got.rest, await drain(reader)), big);
});

Deno.test("readHead() starts from `initial` bytes", async (t) => {
  await t.step("head split between initial and the stream", () => {
    const reader = fakeReader(concat(HEAD.subarray(10), FRAMES), 5);
    return readHead(reader, {
      maxHeadSize: 8192,
      initial: HEAD.subarray(0, 10),
    })
      .then((got) => {
        assert.deepEqual(got?.head, HEAD);
      });
  });
  await t.step(
    "whole head and frames already in initial: no read",
    async () => {
      const reader = fakeReader(new Uint8Array(0), 1);
      const got = await readHead(reader, {
        maxHeadSize: 8192,
        initial: concat(HEAD, FRAMES),
      });
      assert.deepEqual(got, { head: HEAD, rest: FRAMES });
      assert.equal(reader.reads, 0);
    },
  );
});

Deno.test("readHead() refuses a head longer than maxHeadSize with 431", async (t) => {
  const long = enc.encode(
    "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + "x".repeat(10000) + "\r\n\r\n",
  );
  for (const chunk of [1, 100, long.length]) {
    await t.step(`in reads of ${chunk}`, async () => {
      const reader = fakeReader(long, chunk);
      await assert.rejects(
        readHead(reader, { maxHeadSize: 8192 }),
        (e) => e instanceof HandshakeError && e.status === 431,
      );
      // It stops reading at the limit instead of swallowing the whole head.
      assert.ok(reader.consumed <= 8192, `consumed ${reader.consumed}`);
    });
  }
  await t.step(
    "a head of exactly maxHeadSize fits, one more byte does not",
    async () => {
      assert.deepEqual(
        (await readHead(fakeReader(HEAD, 3), { maxHeadSize: HEAD.length }))
          ?.head,
        HEAD,
      );
      await assert.rejects(
        readHead(fakeReader(HEAD, 3), { maxHeadSize: HEAD.length - 1 }),
        (e) => e instanceof HandshakeError && e.status === 431,
      );
    },
  );
  await t.step(
    "a response head fails with INVALID_RESPONSE instead",
    async () => {
      await assert.rejects(
        readHead(fakeReader(long, 512), {
          maxHeadSize: 8192,
          kind: "response",
        }),
        (e) => e instanceof HandshakeError && e.status === INVALID_RESPONSE,
      );
    },
  );
});

Deno.test("readHead() handles EOF", async (t) => {
  await t.step("before any byte: null", async () => {
    assert.equal(
      await readHead(fakeReader(new Uint8Array(0), 1), { maxHeadSize: 8192 }),
      null,
    );
  });
  await t.step("inside the head: 400", async () => {
    await assert.rejects(
      readHead(fakeReader(HEAD.subarray(0, HEAD.length - 1), 4), {
        maxHeadSize: 8192,
      }),
      (e) =>
        e instanceof HandshakeError && e.status === 400 &&
        e.message === "connection closed before the request head ended",
    );
  });
  await t.step("after only `initial` bytes: 400, not null", async () => {
    await assert.rejects(
      readHead(fakeReader(new Uint8Array(0), 1), {
        maxHeadSize: 8192,
        initial: HEAD.subarray(0, 3),
      }),
      (e) => e instanceof HandshakeError && e.status === 400,
    );
  });
});

Deno.test("readHead() rejects with the signal's reason on abort", async (t) => {
  const reason = new Error("handshake timed out");
  await t.step("already aborted: no read at all", async () => {
    const reader = fakeReader(HEAD, 1);
    await assert.rejects(
      readHead(reader, {
        maxHeadSize: 8192,
        signal: AbortSignal.abort(reason),
      }),
      (e) => e === reason,
    );
    assert.equal(reader.reads, 0);
  });
  await t.step(
    "aborted while a read is pending, which later fails quietly",
    async () => {
      let failRead!: (e: Error) => void;
      const stuck: Reader = {
        read: () => new Promise((_, reject) => (failRead = reject)),
      };
      const ac = new AbortController();
      const pending = readHead(stuck, { maxHeadSize: 8192, signal: ac.signal });
      await Promise.resolve();
      ac.abort(reason);
      await assert.rejects(pending, (e) => e === reason);
      // The caller closes the conn, failing the dangling read: nothing unhandled.
      failRead(new Deno.errors.BadResource("closed"));
      await new Promise((r) => setTimeout(r, 0));
    },
  );
});

Deno.test("readHead() returns a bare-LF head at once, with the frames behind it intact in `rest`", async (t) => {
  // Server frames are unmasked: a text frame "Hi" and a close frame.
  const serverFrames = new Uint8Array([0x81, 0x02, 0x48, 0x69, 0x88, 0x00]);
  const cases: [string, "request" | "response", string, Uint8Array][] = [
    ["request, LF LF", "request", "GET /chat HTTP/1.1\nHost: a\nUpgrade: websocket\n\n", FRAMES],
    ["request, LF CR LF", "request", "GET /chat HTTP/1.1\r\nHost: a\n\r\n", FRAMES],
    ["request, CRLF lines, LF end", "request", "GET /chat HTTP/1.1\r\nHost: a\r\n\n", FRAMES],
    [
      "response, LF LF",
      "response",
      "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n\n",
      serverFrames,
    ],
    ["response, LF CR LF", "response", "HTTP/1.1 101 Switching Protocols\n\r\n", serverFrames],
  ];
  for (const [name, kind, text, frames] of cases) {
    await t.step(name, async () => {
      const head = enc.encode(text);
      for (const chunk of [1, 2, 3, 7, head.length - 1, head.length, head.length + 3, 1 << 20]) {
        // The reader stalls after the head and frames: nothing more will come.
        const reader = stallingReader(concat(head, frames), chunk);
        const got = await readHeadAtOnce(reader, kind);
        assert.ok(got !== null);
        assert.deepEqual(got.head, head, `chunk ${chunk}`);
        assert.deepEqual(concat(got.rest, reader.unread()), frames, `chunk ${chunk}`);
      }
      // And the answer is the refusal, at once: lines must end in CRLF.
      const parse = kind === "request" ? parseRequestHead : parseResponseHead;
      assert.throws(
        () => parse(head),
        (e) =>
          e instanceof HandshakeError &&
          e.status === (kind === "request" ? 400 : INVALID_RESPONSE) &&
          e.message.endsWith("a line ends in a bare LF; lines must end in CRLF"),
      );
    });
  }
  await t.step("a CRLF head still waits for its CRLFCRLF", async () => {
    const reader = stallingReader(HEAD.subarray(0, HEAD.length - 1), 5);
    await assert.rejects(readHeadAtOnce(reader, "request"), /waited for more bytes/);
  });
});

Deno.test("readHead() returns a head with a bare CR, which the parser refuses with 400", async () => {
  for (
    const text of [
      "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\rX: b\n\n",
    ]
  ) {
    const head = enc.encode(text);
    const reader = stallingReader(concat(head, FRAMES), 4);
    const got = await readHeadAtOnce(reader, "request");
    assert.ok(got !== null);
    assert.deepEqual(got.head, head);
    assert.deepEqual(concat(got.rest, reader.unread()), FRAMES);
    assert.throws(
      () => parseRequestHead(got.head),
      (e) => e instanceof HandshakeError && e.status === 400 && /bare (CR|LF)/.test(e.message),
      JSON.stringify(text),
    );
  }
});

Deno.test("readHead() reads a real loopback socket and keeps the first frames", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  using server = await listener.accept();

  // The head in two writes, the second carrying the first frames with it.
  await writeAll(client, HEAD.subarray(0, 9));
  await writeAll(client, concat(HEAD.subarray(9), FRAMES));
  client.closeWrite();

  const got = await readHead(server, { maxHeadSize: 8192 });
  assert.ok(got !== null);
  assert.deepEqual(got.head, HEAD);
  assert.deepEqual(concat(got.rest, await drain(server)), FRAMES);
});

Deno.test("readHead() on a real socket rejects on abort, and closing the conn settles the read", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const server = await listener.accept();
  await writeAll(client, HEAD.subarray(0, 5)); // a stalled, partial head

  const ac = new AbortController();
  const pending = readHead(server, { maxHeadSize: 8192, signal: ac.signal });
  const reason = new DOMException("timed out", "TimeoutError");
  ac.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  server.close();
});

Deno.test("writeAll() loops over partial writes", async () => {
  const data = crypto.getRandomValues(new Uint8Array(1000));
  const written: Uint8Array[] = [];
  const writer = {
    write(p: Uint8Array): Promise<number> {
      const n = Math.min(p.length, 7);
      written.push(p.slice(0, n));
      return Promise.resolve(n);
    },
  };
  await writeAll(writer, data);
  assert.deepEqual(concat(...written), data);
  assert.equal(written.length, Math.ceil(1000 / 7));
  await assert.rejects(writeAll({ write: () => Promise.resolve(0) }, data));
});
