/**
 * The heartbeat as people see it through the programs: `--show-pings`, the
 * summary every `close` event carries, the RTT histogram in `/metrics`,
 * and the heartbeat's semantics end to end — a pong timeout at or below
 * the ping interval is refused, a pong timeout sends 1011 before TCP ends
 * (seen from the peer), a clean close without a status code (1005) is a
 * success, the reconnect backoff keeps growing while connections die young,
 * a TLS peer that vanishes without close_notify is `eof` on both ends, and
 * 1009's reason counts a fragmented message right.
 */

import assert from "node:assert/strict";
import { type Connection, serve } from "../mod.ts";
import { backoffCeiling, nextAttempt, STABLE_CONNECTION_MS } from "../app/client/session.ts";
import { acceptFor, frame, RawPeer } from "./helpers/raw.ts";
import {
  hasStackTrace,
  type LogEvent,
  plainLines,
  Program,
  runClient,
  startServer,
} from "./helpers/process.ts";
import { makePki } from "./helpers/tls.ts";
import { sleep, waitFor } from "./helpers/wait.ts";
import { needs, withPrograms } from "./helpers/needs.ts";

/** Tests that make certificates with openssl. */
const withOpenssl = withPrograms("openssl");

const TEXT = 0x1;
const CONTINUATION = 0x0;

/** The `close` event of a program's log. */
function closeOf(events: LogEvent[]): LogEvent {
  const close = events.find((e) => e.event === "close");
  assert.ok(close, JSON.stringify(events));
  return close;
}

// ---------------------------------------------------------------------------
// Seeing the heartbeat

Deno.test("client --show-pings logs each ping and pong: ours with the round trip on the pong, the server's with our answer", async () => {
  await using server = await startServer(["--ping-interval", "400ms", "--pong-timeout", "2s"]);
  const exit = await runClient([
    "--log-format",
    "json",
    "--show-pings",
    "--ping-interval",
    "300ms",
    "--send",
    "hi",
    "--wait",
    "1300ms",
    server.echoUrl,
  ]);
  assert.equal(exit.code, 0, exit.stderr);
  const of = (event: string, dir: string) =>
    exit.events.filter((e) => e.event === event && e.dir === dir);
  const sent = of("ping", "sent");
  const answered = of("pong", "received");
  assert.ok(sent.length >= 3, exit.stderr);
  assert.ok(answered.length >= 3, exit.stderr);
  for (const pong of answered) {
    assert.equal(typeof pong.rtt_ms, "number");
    assert.ok(Number(pong.rtt_ms) >= 0 && Number(pong.rtt_ms) < 1_000, `rtt ${pong.rtt_ms}`);
  }
  // The server's pings arrive and are answered.
  const received = of("ping", "received");
  assert.ok(received.length >= 2, exit.stderr);
  assert.equal(of("pong", "sent").length, received.length);
  // The summary agrees with what was shown.
  const pings = closeOf(exit.events).pings as Record<string, number>;
  assert.equal(pings.sent, sent.length);
  assert.equal(pings.answered, answered.length);
});

Deno.test("client without --show-pings logs no ping or pong, with the same heartbeat; in text format they are logfmt lines", async () => {
  await using server = await startServer(["--ping-interval", "300ms", "--pong-timeout", "2s"]);
  const quiet = await runClient([
    "--log-format",
    "json",
    "--ping-interval",
    "300ms",
    "--wait",
    "1s",
    "--send",
    "x",
    server.echoUrl,
  ]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.deepEqual(quiet.events.filter((e) => e.event === "ping" || e.event === "pong"), []);
  assert.ok((closeOf(quiet.events).pings as Record<string, number>).answered >= 2);
  const text = await runClient([
    "--show-pings",
    "--ping-interval",
    "300ms",
    "--wait",
    "1s",
    "--send",
    "x",
    server.echoUrl,
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stderr, /^time=\S+ level=info event=ping id=1 dir=sent bytes=4$/m);
  assert.match(text.stderr, /^time=\S+ level=info event=pong id=1 dir=received rtt_ms=\d+$/m);
  assert.equal(text.stdout, "x\n", "pings never reach stdout");
});

Deno.test("both programs' close event sums the connection up: pings and round trips, messages and bytes each way, the last frame's age", async () => {
  await using server = await startServer(["--ping-interval", "250ms", "--pong-timeout", "2s"]);
  const exit = await runClient([
    "--log-format",
    "json",
    "--ping-interval",
    "300ms",
    "--send",
    "hello",
    "--send",
    "wörld",
    "--wait",
    "1200ms",
    server.echoUrl,
  ]);
  assert.equal(exit.code, 0, exit.stderr);
  const client = closeOf(exit.events);
  const serverClose = await server.proc.waitForEvent("close");
  // Payload bytes: "hello" is 5, "wörld" is 6 in UTF-8.
  assert.deepEqual(client.traffic, {
    messages_in: 2,
    bytes_in: 11,
    messages_out: 2,
    bytes_out: 11,
  });
  assert.deepEqual(serverClose.traffic, {
    messages_in: 2,
    bytes_in: 11,
    messages_out: 2,
    bytes_out: 11,
  });
  for (const [who, close] of [["client", client], ["server", serverClose]] as const) {
    const p = close.pings as Record<string, number>;
    assert.ok(
      p.sent >= 3 && p.answered >= 3 && p.answered <= p.sent,
      `${who}: ${JSON.stringify(p)}`,
    );
    assert.ok(p.rtt_min_ms <= p.rtt_avg_ms && p.rtt_avg_ms <= p.rtt_max_ms, `${who} rtt`);
    assert.equal(typeof close.last_frame_age_ms, "number");
    // Pings went both ways all along: the last frame is recent.
    assert.ok(Number(close.last_frame_age_ms) < 1_000, `${who}: ${close.last_frame_age_ms}`);
  }
  // No ping answered: round trips are null, not 0.
  const none = await runClient(["--log-format", "json", "--send", "x", server.echoUrl]);
  assert.deepEqual(closeOf(none.events).pings, {
    sent: 0,
    answered: 0,
    rtt_min_ms: null,
    rtt_avg_ms: null,
    rtt_max_ms: null,
  });
});

Deno.test("a server's close event shows how long a frozen client had been silent when the pong timeout ended it", async () => {
  await using server = await startServer(["--ping-interval", "300ms", "--pong-timeout", "1200ms"]);
  await using _client = Program.start("client.ts", [
    "--log-format",
    "json",
    "--freeze-after",
    "500ms",
    "--wait",
    "10s",
    server.echoUrl,
  ], { stdin: true });
  const close = await server.proc.waitForEvent("close");
  assert.equal(close.cause, "pong-timeout");
  // Silent since the freeze: the pong timeout, then the close frame's bounded wait.
  const age = Number(close.last_frame_age_ms);
  assert.ok(age >= 1_200 && age < 5_000, `silent for ${age} ms`);
  const p = close.pings as Record<string, number>;
  assert.ok(p.sent >= 3 && p.answered >= 1 && p.answered < p.sent, JSON.stringify(p));
});

Deno.test("/metrics has a histogram of the server's ping round trips, keepalive_ws_ping_rtt_seconds, counting every answered ping", async () => {
  await using server = await startServer(["--ping-interval", "200ms", "--pong-timeout", "2s"]);
  const metric = async (name: string) => {
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    const escaped = name.replace(/[{}+"]/g, (c) => `\\${c}`);
    const m = new RegExp(`^${escaped} (\\S+)$`, "m").exec(text);
    assert.ok(m, `${name} in\n${text}`);
    return Number(m[1]);
  };
  assert.equal(await metric("keepalive_ws_ping_rtt_seconds_count"), 0);
  const exit = await runClient([
    "--log-format",
    "json",
    "--wait",
    "1200ms",
    "--send",
    "x",
    server.echoUrl,
  ]);
  assert.equal(exit.code, 0, exit.stderr);
  const close = await server.proc.waitForEvent("close");
  const answered = (close.pings as Record<string, number>).answered;
  assert.ok(answered >= 3, `${answered} answered`);
  assert.equal(await metric("keepalive_ws_ping_rtt_seconds_count"), answered);
  assert.equal(await metric('keepalive_ws_ping_rtt_seconds_bucket{le="+Inf"}'), answered);
  // Loopback round trips fit the 1 s bucket; the sum is their total in seconds.
  assert.equal(await metric('keepalive_ws_ping_rtt_seconds_bucket{le="1"}'), answered);
  const sum = await metric("keepalive_ws_ping_rtt_seconds_sum");
  assert.ok(sum >= 0 && sum < answered, `sum ${sum}`);
});

// ---------------------------------------------------------------------------
// Heartbeat semantics

Deno.test("a --pong-timeout at or below --ping-interval is a usage error (exit 2) on both programs", async (t) => {
  const cases: [string, string[], RegExp][] = [
    [
      "server",
      ["--ping-interval", "5s", "--pong-timeout", "5s"],
      /--pong-timeout 5s must be longer than --ping-interval 5s/,
    ],
    [
      "server",
      ["--ping-interval", "90s"],
      /--pong-timeout 1m0s \(the default\) must be longer than --ping-interval 1m30s/,
    ],
    [
      "client",
      ["--ping-interval", "2s", "--pong-timeout", "1s"],
      /--pong-timeout 1s must be longer than --ping-interval 2s/,
    ],
    ["client", ["--ping-interval", "1s", "--pong-timeout", "1000ms"], /must be longer/],
  ];
  for (const [program, args, message] of cases) {
    await t.step(`${program} ${args.join(" ")}`, async () => {
      await using proc = Program.start(`${program}.ts`, [...args, "--print-keepalive"]);
      const exit = await proc.wait();
      assert.equal(exit.code, 2, exit.stderr);
      assert.ok(!hasStackTrace(exit.stderr), exit.stderr);
      assert.match(plainLines(exit.stderr)[0], message);
    });
  }
  // Just above, and either side off, are fine.
  for (
    const [program, args] of [
      ["server", ["--ping-interval", "5s", "--pong-timeout", "5001ms"]],
      ["server", ["--ping-interval", "0", "--pong-timeout", "1s"]],
      ["client", ["--ping-interval", "2s"]],
    ] as const
  ) {
    await using proc = Program.start(`${program}.ts`, [...args, "--print-keepalive"]);
    assert.equal((await proc.wait()).code, 0, `${program} ${args.join(" ")}`);
  }
});

Deno.test("on a pong timeout the client sends close 1011 'pong timeout' before ending TCP: the server (which answers no ping) reads it", async () => {
  await using server = await startServer([
    "--ping-interval",
    "0",
    "--pong-timeout",
    "0",
    "--no-pong",
  ]);
  await using client = Program.start("client.ts", [
    "--log-format",
    "json",
    "--ping-interval",
    "300ms",
    "--pong-timeout",
    "1s",
    "--wait",
    "10s",
    server.echoUrl,
  ], { stdin: true });
  const exit = await client.wait();
  assert.equal(exit.code, 1);
  assert.equal(closeOf(client.events).cause, "pong-timeout");
  assert.match(String(client.events.at(-1)?.message), /pong-timeout/);
  const seen = await server.proc.waitForEvent("close");
  assert.deepEqual(
    [seen.code, seen.reason, seen.cause],
    [1011, "pong timeout", "peer-close"],
    "the server read the client's close frame",
  );
  const faults = server.proc.events.filter((e) => e.event === "fault" && e.fault === "no-pong");
  assert.ok(faults.length >= 2, "each unanswered ping was logged");
});

Deno.test("on a pong timeout the server sends close 1011 'pong timeout' first: the client (which answers no ping) reads it and exits 1", async () => {
  await using server = await startServer(["--ping-interval", "300ms", "--pong-timeout", "1s"]);
  const exit = await runClient([
    "--log-format",
    "json",
    "--no-pong",
    "--wait",
    "10s",
    server.echoUrl,
  ], {
    input: "",
  });
  const close = closeOf(exit.events);
  assert.deepEqual([close.code, close.reason, close.cause], [1011, "pong timeout", "peer-close"]);
  assert.equal(exit.code, 1, "a 1011 is not a normal close");
  assert.equal((await server.proc.waitForEvent("close")).cause, "pong-timeout");
});

/** A one-connection server in this process that runs `then` on each upgraded connection. */
function scriptedServer(then: (ws: Connection) => Promise<void> | void) {
  const server = serve(
    { hostname: "127.0.0.1", port: 0, pingInterval: 0, pongTimeout: 0 },
    async (req) => {
      const ws = await req.upgrade();
      await then(ws);
      await ws.closed;
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}/echo`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("a clean close without a status code (an empty close frame, 1005) ends the client with exit 0", async () => {
  // Sent by hand: an empty close payload, as npm ws's ws.close() sends.
  await using raw = rawCloser();
  const exit = await runClient(["--log-format", "json", "--wait", "10s", raw.url], { input: "" });
  const close = closeOf(exit.events);
  assert.deepEqual([close.code, close.clean, close.cause], [1005, true, "peer-close"], exit.stderr);
  assert.equal(exit.code, 0, exit.stderr);
  assert.deepEqual(exit.events.filter((e) => e.event === "error"), []);
});

/** A raw server that answers the upgrade, sends an empty close frame, waits for the answer, ends TCP. */
function rawCloser() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    const peer = new RawPeer(conn);
    const head = new TextDecoder().decode(await readHead(peer));
    const key = /sec-websocket-key: *(\S+)/i.exec(head)![1];
    await peer.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`,
    );
    await peer.write(frame(0x8, new Uint8Array(0)));
    await peer.readFrame().catch(() => {});
    peer.close();
  })().catch(() => {});
  return {
    url: `ws://127.0.0.1:${listener.addr.port}/echo`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await done;
    },
  };
}

/** Reads a request head (to the blank line) from a raw peer. */
async function readHead(peer: RawPeer): Promise<Uint8Array> {
  const bytes: number[] = [];
  while (!(bytes.length >= 4 && bytes.slice(-4).join() === "13,10,13,10")) {
    bytes.push(...await peer.readExactly(1));
  }
  return Uint8Array.from(bytes);
}

Deno.test({
  ...needs("npm ws's ws.close() with no code (1005) ends the client with exit 0", "nodeWs"),
  async fn() {
    await using peer = Program.spawn("node", [
      new URL("peers/ws_echo_server.mjs", import.meta.url).pathname,
    ], {
      events: "stdout",
    });
    const listening = await peer.waitForEvent("listening");
    const exit = await runClient([
      "--log-format",
      "json",
      "--send",
      "!close {}",
      "--wait",
      "10s",
      `ws://127.0.0.1:${listening.port}/`,
    ]);
    const close = closeOf(exit.events);
    assert.deepEqual([close.code, close.clean], [1005, true], exit.stderr);
    assert.equal(exit.code, 0, exit.stderr);
  },
});

Deno.test("nextAttempt(): the backoff starts over only after a connection lived 30 s", () => {
  assert.equal(STABLE_CONNECTION_MS, 30_000);
  assert.equal(nextAttempt(4, { opened: true, livedMs: 30_000 }), 1);
  assert.equal(nextAttempt(4, { opened: true, livedMs: 29_999 }), 5);
  assert.equal(nextAttempt(4, { opened: false, livedMs: 0 }), 5);
  assert.equal(nextAttempt(0, { opened: true, livedMs: 10 }), 1);
  assert.deepEqual([1, 2, 3, 4, 7, 30].map((n) => backoffCeiling(n, 30_000)), [
    500,
    1_000,
    2_000,
    4_000,
    30_000,
    30_000,
  ]);
});

Deno.test("client --reconnect keeps backing off while the server accepts and at once closes with 1013, 1008 or 4000", async (t) => {
  for (const code of [1013, 1008, 4000]) {
    await t.step(`close ${code}`, async () => {
      await using server = scriptedServer((ws) => void ws.close(code, "go away"));
      await using client = Program.start("client.ts", [
        "--log-format",
        "json",
        "--reconnect",
        server.url,
      ], { stdin: true });
      // Attempts 1–4 take at most 0.5 + 1 + 2 + 4 s of delay.
      await client.waitForEvent("reconnect", () => true, { nth: 4, timeoutMs: 15_000 });
      const reconnects = client.events.filter((e) => e.event === "reconnect");
      assert.deepEqual(reconnects.slice(0, 4).map((e) => e.attempt), [1, 2, 3, 4]);
      for (const [i, e] of reconnects.slice(0, 4).entries()) {
        const ceiling = 500 * 2 ** i;
        assert.ok(
          Number(e.delay_ms) >= ceiling / 2 && Number(e.delay_ms) <= ceiling,
          `attempt ${e.attempt}: delay ${e.delay_ms}`,
        );
      }
      const closes = client.events.filter((e) => e.event === "close");
      assert.ok(closes.length >= 4);
      for (const c of closes) assert.deepEqual([c.code, c.cause], [code, "peer-close"]);
    });
  }
});

withOpenssl.test("a TLS peer that vanishes without close_notify is eof on both ends, as on plain TCP", async (t) => {
  await using pki = await makePki();
  await t.step("the client is killed: the server sees eof", async () => {
    await using server = await startServer(["--tls-cert", pki.cert, "--tls-key", pki.key]);
    await using client = Program.start("client.ts", ["--ca", pki.caCert, server.echoUrl], {
      stdin: true,
    });
    await client.write("hello\n");
    await client.waitForLines(1);
    client.kill("SIGKILL");
    const close = await server.proc.waitForEvent("close");
    assert.deepEqual([close.code, close.cause, close.clean], [1006, "eof", false]);
  });
  await t.step("the server is killed: the client sees eof and exits 1", async () => {
    await using server = await startServer(["--tls-cert", pki.cert, "--tls-key", pki.key]);
    await using client = Program.start("client.ts", [
      "--log-format",
      "json",
      "--ca",
      pki.caCert,
      server.echoUrl,
    ], { stdin: true });
    await client.write("hello\n");
    await client.waitForLines(1);
    server.proc.kill("SIGKILL");
    const exit = await client.wait();
    const close = closeOf(client.events);
    assert.deepEqual([close.code, close.cause, close.clean], [1006, "eof", false], exit.stderr);
    assert.equal(exit.code, 1);
  });
});

Deno.test("server --max-message-size 100 closes a fragmented 120-byte message with 1009 whose reason states 120 bytes", async () => {
  await using server = await startServer(["--max-message-size", "100"]);
  await using peer = await RawPeer.connect(server.port);
  await peer.handshake("/echo");
  await peer.write(frame(TEXT, "a".repeat(60), { mask: true, fin: false }));
  await sleep(50); // the two fragments in two reads
  await peer.write(frame(CONTINUATION, "b".repeat(60), { mask: true }));
  const { code, reason } = await peer.readClose();
  assert.equal(code, 1009);
  assert.equal(reason, "message of 120 bytes exceeds the limit of 100");
  const close = await waitFor(server.proc.waitForEvent("close"), "the server's close event");
  assert.deepEqual([close.code, close.reason, close.cause], [1009, reason, "message-too-big"]);
});
