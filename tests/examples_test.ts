/**
 * The examples in examples/ run as a user would run them, each against
 * peers it did not write where that matters: they import only mod.ts.
 */

import assert from "node:assert/strict";
import { dial, serve } from "../mod.ts";
import { MAX_MEMBER_BACKLOG, startChat } from "../examples/chat.ts";
import { keepConnected } from "../examples/reconnect.ts";
import { serveTcpEcho } from "../examples/tcp_echo.ts";
import { frame, RawPeer } from "./helpers/raw.ts";
import { keepAliveTimers } from "./helpers/tcp_timers.ts";

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`no ${what} within ${ms}ms`)), ms)
    ),
  ]);

Deno.test("examples/chat.ts: a member that stops reading neither stalls the room nor grows its memory; it is dropped with 1008", async () => {
  const { server, room } = startChat(0);
  const url = `ws://127.0.0.1:${server.addr.port}/chat`;
  try {
    const alice = await dial(url);
    const bob = await dial(url);
    // Carol upgrades by hand and then never reads a byte.
    const carol = await RawPeer.connect(server.addr.port);
    await carol.handshake("/chat");
    while (room.members.size < 3) await new Promise((r) => setTimeout(r, 5));

    // 24 MiB: more than the kernel's buffers toward Carol (several MiB on
    // loopback) plus her 1 MiB backlog.
    const n = 6_000;
    const text = "x".repeat(4096);
    let peak = 0;
    const watch = setInterval(() => {
      let queued = 0;
      for (const m of room.members) queued += m.bufferedAmount;
      peak = Math.max(peak, queued);
    }, 1);
    let count = 0;
    const received = (async () => {
      for await (const msg of bob) {
        assert.equal(msg, `${count} ${text}`);
        if (++count === n) break;
      }
      return count;
    })();
    // Alice is polite: she stays within 128 messages of Bob, as a chat would.
    for (let i = 0; i < n; i++) {
      while (i - count > 128) await new Promise((r) => setTimeout(r, 1));
      await alice.send(`${i} ${text}`);
    }
    const got = await within(received, 20_000, "16 MiB of chat reaching Bob");
    clearInterval(watch);

    assert.equal(got, n, "Bob got every message, in order");
    assert.equal(room.dropped, 1, "Carol was dropped");
    // Her connection ends within the bound of a failing close (1 s).
    for (let i = 0; i < 300 && room.members.size > 2; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(room.members.size, 2);
    assert.ok(peak <= MAX_MEMBER_BACKLOG + 64 * 1024, `the room held ${peak} unsent bytes at most`);
    const close = await carol.readClose(5_000).catch(() => null);
    // Carol's own buffers are full of chat, so her close frame may be behind
    // megabytes she never reads; what matters is that the server let her go.
    if (close) assert.equal(close.code, 1008);
    carol.close();
    await alice.close();
    await bob.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("examples/tcp_echo.ts: every plain TCP connection gets Go's 15/15/9 through tuneSocket(), read back and seen in /proc/net/tcp", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tuned: {
    keepAlive: boolean;
    idle: number | null;
    interval: number | null;
    count: number | null;
    verified: boolean;
  }[] = [];
  const serving = serveTcpEcho(listener, (_remote, o) => tuned.push(o));
  try {
    const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await client.write(new TextEncoder().encode("hello"));
    const buf = new Uint8Array(16);
    const n = await client.read(buf);
    assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "hello");
    assert.equal(tuned.length, 1);
    const { keepAlive, idle, interval, count, verified } = tuned[0];
    assert.deepEqual({ keepAlive, idle, interval, count, verified }, {
      keepAlive: true,
      idle: 15_000,
      interval: 15_000,
      count: 9,
      verified: true,
    });
    const timers = await keepAliveTimers(listener.addr.port);
    assert.equal(timers.length, 1, "the server's socket");
    assert.ok(
      timers[0] <= 15,
      `the kernel's keepalive timer is at ${timers[0]}s, not Linux's 7200s`,
    );
    client.close();
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("examples/reconnect.ts: the client comes back after the server restarts, and backs off while a server keeps refusing", async (t) => {
  await t.step("a restart: 1001, then the same port again", async () => {
    const echo = (port: number) =>
      serve({ hostname: "127.0.0.1", port }, async (req) => {
        const ws = await req.upgrade();
        for await (const m of ws) await ws.send(m);
      });
    let server = echo(0);
    const port = server.addr.port;
    const stop = new AbortController();
    const echoed: string[] = [];
    const retries: string[] = [];
    let opens = 0;
    const client = keepConnected(
      `ws://127.0.0.1:${port}/`,
      async (ws) => {
        opens++;
        await ws.send(`hello ${opens}`);
        for await (const m of ws) {
          echoed.push(m as string);
          break;
        }
        if (opens === 2) stop.abort();
      },
      { signal: stop.signal, baseDelay: 50 },
      (a) => retries.push(`${a.last?.code ?? a.error}`),
    );
    while (opens < 1 || echoed.length < 1) await new Promise((r) => setTimeout(r, 10));
    await server.shutdown(); // 1001 to the client
    server = echo(port);
    const last = await within(client, 10_000, "the client to reconnect and finish");
    await server.shutdown();
    assert.deepEqual(echoed, ["hello 1", "hello 2"]);
    assert.equal(retries[0], "1001", "the first retry follows the server going away");
    assert.equal(last?.code, 1000, "the client closed the second connection itself");
  });

  await t.step(
    "a server that accepts and then drops every connection gets ever longer pauses",
    async () => {
      const server = serve({ hostname: "127.0.0.1", port: 0 }, async (req) => {
        const ws = await req.upgrade();
        ws.abort("try again later", 1013);
      });
      const stop = new AbortController();
      const delays: number[] = [];
      const client = keepConnected(`ws://127.0.0.1:${server.addr.port}/`, () => {}, {
        signal: stop.signal,
        baseDelay: 20,
        maxDelay: 2_000,
      }, (a) => {
        delays.push(a.delay);
        if (delays.length === 5) stop.abort();
      });
      await within(client, 10_000, "five attempts");
      await server.shutdown();
      // Equal jitter: each delay lies in [ceiling/2, ceiling], the ceiling doubling.
      delays.forEach((d, i) => {
        const ceiling = 20 * 2 ** i;
        assert.ok(
          d >= ceiling / 2 && d <= ceiling,
          `delay ${i}: ${d}ms for a ceiling of ${ceiling}ms`,
        );
      });
    },
  );
});

Deno.test("a raw frame to the chat is relayed as the same text (the room speaks plain RFC 6455)", async () => {
  const { server } = startChat(0);
  try {
    const listener = await dial(`ws://127.0.0.1:${server.addr.port}/chat`);
    const raw = await RawPeer.connect(server.addr.port);
    await raw.handshake("/chat");
    await new Promise((r) => setTimeout(r, 50));
    await raw.write(frame(0x1, "from a hand-made frame", { mask: true }));
    const it = listener[Symbol.asyncIterator]();
    assert.deepEqual(await within(it.next(), 5_000, "the relayed message"), {
      value: "from a hand-made frame",
      done: false,
    });
    raw.close();
    await listener.close();
  } finally {
    await server.shutdown();
  }
});
