/**
 * Dead peers found in the promised time, on real cut links: each test puts the
 * server and the client in two fresh network namespaces joined by a veth pair,
 * sets one side's link down (or freezes a program with SIGSTOP) and watches
 * which mechanism notices, with which close cause, and how fast.
 *
 * Detection times are printed at the end of each test ("detected …").
 */

import assert from "node:assert/strict";
import { type LogEvent, LoggedProcess, NetnsPair, netnsUnavailable } from "./helpers/netns.ts";

const skip = await netnsUnavailable();
const suffix = skip ? ` (skipped: ${skip})` : "";

const DENO = Deno.execPath();
const RUN = ["run", "--allow-net", "--allow-ffi", "--allow-read"];
const SERVER = [...RUN, new URL("../server.ts", import.meta.url).pathname, "--log-format", "json"];
const CLIENT = [...RUN, new URL("../client.ts", import.meta.url).pathname, "--log-format", "json"];

/** Keepalive idle 1 s, interval 1 s, count 3: a dead idle peer is noticed after about 4 s. */
const FAST_KEEPALIVE = [
  "--keepalive-idle",
  "1s",
  "--keepalive-interval",
  "1s",
  "--keepalive-count",
  "3",
];
/** The WebSocket heartbeat off, so only TCP can notice anything. */
const NO_HEARTBEAT = ["--ping-interval", "0", "--pong-timeout", "0"];

/** Starting a Deno program on a loaded 2-core machine can take a while. */
const START_MS = 30_000;
/** How long the connection stays untouched before the cut, so it is idle. */
const SETTLE_MS = 500;

/** The times measured by this file, printed together at the end. */
const measured: string[] = [];

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Asserts that an event's keepalive block shows what was read back from the socket. */
function assertKeepAlive(ev: LogEvent, idle: number, interval: number, count: number) {
  assert.deepEqual(ev.keepalive, {
    enabled: true,
    idle_s: idle,
    interval_s: interval,
    count,
    verified: true,
  });
}

/** Starts the server in `a` on its veth address, and the client in `b`, and waits for both `open`s. */
async function connect(
  net: NetnsPair,
  serverFlags: string[],
  clientFlags: string[],
  stack: AsyncDisposableStack,
): Promise<
  { server: LoggedProcess; client: LoggedProcess; serverOpen: LogEvent; clientOpen: LogEvent }
> {
  const server = stack.use(
    net.start(net.a, DENO, [...SERVER, "--addr", `${net.a.addr}:0`, ...serverFlags]),
  );
  const listening = await server.expect("listening", START_MS);
  const url = `ws://${listening.ev.addr}/echo`;
  // stdin stays open, so the client waits for input instead of closing.
  const client = stack.use(
    net.start(net.b, DENO, [...CLIENT, url, "--wait", "60s", ...clientFlags], { stdin: true }),
  );
  const serverOpen = (await server.expect("open", START_MS)).ev;
  const clientOpen = (await client.expect("open", START_MS)).ev;
  return { server, client, serverOpen, clientOpen };
}

/** Sets a side's link down and returns Date.now() once it is down. */
async function cut(net: NetnsPair, side: "a" | "b"): Promise<number> {
  await net.setLink(net[side], false);
  return Date.now();
}

Deno.test({
  name:
    `a server with keepalive 1s/1s/3 notices a cut client link as keepalive-timeout in about 4 s${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    const { server, serverOpen } = await connect(
      net,
      [...FAST_KEEPALIVE, ...NO_HEARTBEAT],
      [],
      stack,
    );
    assertKeepAlive(serverOpen, 1, 1, 3);
    await delay(SETTLE_MS);
    const cutAt = await cut(net, "b");
    const close = await server.expect("close", 20_000);
    const took = close.at - cutAt;
    assert.equal(close.ev.cause, "keepalive-timeout", server.log());
    assert.equal(close.ev.code, 1006);
    assert.equal(close.ev.clean, false);
    // idle 1 s + 3 probes × 1 s after the last ACK, which came 0–1 s before the cut.
    assertBetween(took, 2_500, 7_000, "keepalive detection");
    measured.push(
      `server keepalive 1s/1s/3, cut client link: keepalive-timeout after ${seconds(took)}`,
    );
    console.log(`detected: keepalive-timeout ${seconds(took)} after the cut`);
  },
});

Deno.test({
  name:
    `with --no-keepalive the same cut goes unnoticed for 8 s, and the connection still works after the link returns${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    // The kernel defaults in the server's namespace are 1s/1s/3 too, so only
    // SO_KEEPALIVE=0 can keep the cut unnoticed.
    for (const [name, value] of [["time", "1"], ["intvl", "1"], ["probes", "3"]]) {
      await net.sysctl(net.a, `net.ipv4.tcp_keepalive_${name}`, value);
    }
    await using stack = new AsyncDisposableStack();
    const { server, client, serverOpen } = await connect(net, ["--no-keepalive", ...NO_HEARTBEAT], [
      "--no-keepalive",
    ], stack);
    assert.equal((serverOpen.keepalive as { enabled: boolean }).enabled, false);
    await delay(SETTLE_MS);
    await cut(net, "b");
    assert.equal(await server.waitFor("close", 8_000), null, server.log());
    assert.equal(await client.waitFor("close", 0), null, client.log());
    // Nothing noticed because nothing was probed: the link comes back and the
    // same connection carries a message both ways.
    await net.setLink(net.b, true);
    await client.writeLine("still here");
    await waitUntil(() => client.stdout.includes("still here\n"), 20_000, () => client.log());
    measured.push("no keepalive, no heartbeat, cut client link: not noticed in 8 s");
  },
});

Deno.test({
  name:
    `a frozen (SIGSTOP) client is closed as pong-timeout by the heartbeat, not by keepalive${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    const { server, client, serverOpen } = await connect(
      net,
      [...FAST_KEEPALIVE, "--ping-interval", "1s", "--pong-timeout", "2s"],
      [],
      stack,
    );
    assertKeepAlive(serverOpen, 1, 1, 3);
    await delay(SETTLE_MS);
    client.kill("SIGSTOP");
    const stoppedAt = Date.now();
    const close = await server.expect("close", 20_000);
    const took = close.at - stoppedAt;
    assert.equal(close.ev.cause, "pong-timeout", server.log());
    // 2 s after the last pong, which came 0–1 s before the freeze.
    assertBetween(took, 800, 6_000, "heartbeat detection");
    measured.push(`server heartbeat 1s/2s, client frozen: pong-timeout after ${seconds(took)}`);
    console.log(`detected: pong-timeout ${seconds(took)} after SIGSTOP`);
  },
});

Deno.test({
  name:
    `keepalive 1s/1s/3 alone does not notice a frozen client within 8 s: its kernel answers the probes${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    const { server, client, serverOpen } = await connect(
      net,
      [...FAST_KEEPALIVE, ...NO_HEARTBEAT],
      [],
      stack,
    );
    assertKeepAlive(serverOpen, 1, 1, 3);
    client.kill("SIGSTOP");
    assert.equal(await server.waitFor("close", 8_000), null, server.log());
    measured.push("server keepalive 1s/1s/3 only, client frozen: not noticed in 8 s");
  },
});

Deno.test({
  name:
    `a client with keepalive 1s/1s/3 notices a cut server link as keepalive-timeout, says so on stderr and exits 1${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    const { client, clientOpen } = await connect(
      net,
      ["--no-keepalive", ...NO_HEARTBEAT],
      FAST_KEEPALIVE,
      stack,
    );
    assertKeepAlive(clientOpen, 1, 1, 3);
    await delay(SETTLE_MS);
    const cutAt = await cut(net, "a");
    const close = await client.expect("close", 20_000);
    const took = close.at - cutAt;
    assert.equal(close.ev.cause, "keepalive-timeout", client.log());
    assertBetween(took, 2_500, 7_000, "keepalive detection");
    const status = await client.exit(10_000);
    assert.equal(status?.code, 1, client.log());
    const errors = client.named("error");
    assert.equal(errors.length, 1, client.log());
    assert.match(String(errors[0].ev.message), /keepalive-timeout/);
    measured.push(
      `client keepalive 1s/1s/3, cut server link: keepalive-timeout after ${seconds(took)}`,
    );
    console.log(`detected: keepalive-timeout ${seconds(took)} after the cut`);
  },
});

Deno.test({
  name:
    `a client message sent into a cut link fails as user-timeout about 3 s later with --tcp-user-timeout 3s${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    // Keepalive 1s/1s/3 is on too: it must not take the credit, since probes
    // stop while data waits for an ACK.
    const { client, clientOpen } = await connect(net, ["--no-keepalive", ...NO_HEARTBEAT], [
      ...FAST_KEEPALIVE,
      "--tcp-user-timeout",
      "3s",
    ], stack);
    assert.equal(clientOpen.user_timeout_ms, 3000);
    await cut(net, "a");
    await client.writeLine("into the void");
    const sentAt = Date.now();
    const close = await client.expect("close", 20_000);
    const took = close.at - sentAt;
    assert.equal(close.ev.cause, "user-timeout", client.log());
    assertBetween(took, 2_500, 7_000, "user timeout detection");
    assert.equal((await client.exit(10_000))?.code, 1, client.log());
    measured.push(
      `client --tcp-user-timeout 3s, send into cut link: user-timeout after ${seconds(took)}`,
    );
    console.log(`detected: user-timeout ${seconds(took)} after the send`);
  },
});

Deno.test({
  name:
    `a server ping sent into a cut link fails as user-timeout with --tcp-user-timeout 3s${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    // Go's default keepalive (15 s idle) cannot fire within the test; the ping
    // every second is the data in flight.
    const { server, serverOpen } = await connect(
      net,
      [
        "--tcp-user-timeout",
        "3s",
        "--ping-interval",
        "1s",
        "--pong-timeout",
        "0",
      ],
      [],
      stack,
    );
    assert.equal(serverOpen.user_timeout_ms, 3000);
    const cutAt = await cut(net, "b");
    const close = await server.expect("close", 20_000);
    const took = close.at - cutAt;
    assert.equal(close.ev.cause, "user-timeout", server.log());
    // The first ping after the cut goes out within 1 s, then 3 s unacknowledged.
    assertBetween(took, 2_500, 8_000, "user timeout detection");
    measured.push(
      `server --tcp-user-timeout 3s, ping into cut link: user-timeout after ${seconds(took)}`,
    );
    console.log(`detected: user-timeout ${seconds(took)} after the cut`);
  },
});

Deno.test({
  name:
    `an idle echo connection with --tcp-user-timeout 3s and keepalive is named keepalive-timeout when cut, though the server sent last${suffix}`,
  ignore: skip !== null,
  async fn() {
    await using net = await NetnsPair.create();
    await using stack = new AsyncDisposableStack();
    const { server, client } = await connect(
      net,
      [
        ...FAST_KEEPALIVE,
        ...NO_HEARTBEAT,
        "--tcp-user-timeout",
        "3s",
      ],
      [],
      stack,
    );
    // The echo is the last thing the server sends, and the client's kernel acknowledges it.
    await client.writeLine("echo me");
    await waitUntil(() => client.stdout.includes("echo me\n"), 20_000, () => client.log());
    await delay(SETTLE_MS);
    const cutAt = await cut(net, "b");
    const close = await server.expect("close", 20_000);
    const took = close.at - cutAt;
    assert.equal(close.ev.cause, "keepalive-timeout", server.log());
    // With TCP_USER_TIMEOUT set, Linux ends probing once the timeout has passed since the last ACK.
    assertBetween(took, 1_500, 7_000, "keepalive detection");
    measured.push(
      `server keepalive 1s/1s/3 + --tcp-user-timeout 3s, idle after an echo, cut: keepalive-timeout after ${
        seconds(took)
      }`,
    );
    console.log(`detected: keepalive-timeout ${seconds(took)} after the cut`);
  },
});

Deno.test({
  name: `netns detection times${suffix}`,
  ignore: skip !== null,
  fn() {
    console.log(measured.map((line) => `  ${line}`).join("\n"));
  },
});

function assertBetween(ms: number, lo: number, hi: number, what: string) {
  assert.ok(ms >= lo && ms <= hi, `${what} took ${ms} ms, expected ${lo}–${hi} ms`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(ok: () => boolean, timeoutMs: number, context: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms:\n${context()}`);
    await delay(50);
  }
}
