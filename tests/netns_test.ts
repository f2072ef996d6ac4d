/**
 * Dead peers found in the promised time, on real cut links: each scenario
 * puts the server and the client in two fresh network namespaces joined by a
 * veth pair, sets one side's link down (or freezes a program with SIGSTOP)
 * and watches which mechanism notices, with which close cause, and how fast.
 *
 * One row of {@linkcode SCENARIOS} per test; {@linkcode run} plays any row.
 * Detection times are printed at the end ("netns detection times").
 */

import assert from "node:assert/strict";
import { NetnsPair, netnsUnavailable } from "./helpers/netns.ts";
import { notRun } from "./helpers/needs.ts";
import { type LogEvent, Program, startServer } from "./helpers/process.ts";
import { sleep, TimeoutError } from "./helpers/wait.ts";

const skip = await netnsUnavailable();

/** Keepalive idle 1 s, interval 1 s, count 3: a dead idle peer is noticed after about 4 s. */
const FAST_KEEPALIVE = [
  "--keepalive-idle",
  "1s",
  "--keepalive-interval",
  "1s",
  "--keepalive-count",
  "3",
];
/** What an `open` event shows for {@linkcode FAST_KEEPALIVE}, read back from the socket. */
const FAST_READ_BACK = { enabled: true, idle_s: 1, interval_s: 1, count: 3, verified: true };
/** The WebSocket heartbeat off, so only TCP can notice anything. */
const NO_HEARTBEAT = ["--ping-interval", "0", "--pong-timeout", "0"];

/** Starting a Deno program on a loaded 2-core machine can take a while. */
const START_MS = 30_000;
/** How long the connection stays untouched before the fault, so it is idle. */
const SETTLE_MS = 500;
/** The bound on waiting for a close that is expected. */
const CLOSE_WAIT_MS = 20_000;

type Side = "server" | "client";

/** One scenario: who runs with what, what breaks, and who must notice it how fast. */
interface Scenario {
  /** The test name: the behaviour. */
  name: string;
  /** For the summary of detection times. */
  label: string;
  /** The server's flags; it runs in namespace `a`. */
  server: string[];
  /** The client's flags; it runs in namespace `b` with stdin open, so it stays. */
  client: string[];
  /** `net.*` sysctls set in the server's namespace first. */
  serverSysctl?: Record<string, string>;
  /** Fields (dotted paths) each side's `open` event must show. */
  opens?: Partial<Record<Side, Record<string, unknown>>>;
  /** A line the client sends and gets echoed before the fault. */
  echoFirst?: string;
  /**
   * What breaks: a side's link goes down (`cut`), then maybe the client sends
   * a line into it (`send`); or a side's program is frozen (`freeze`).
   * Detection is timed from the last of these.
   */
  fault: { cut: Side; send?: string } | { freeze: Side };
  /** Who notices, with which cause, how fast; or that nobody notices. */
  expect:
    | {
      noticedBy: Side;
      cause: string;
      code?: number;
      clean?: boolean;
      /** Bounds on the detection time, ms after the fault. */
      withinMs: [number, number];
      /** How the noticing program then exits, and what its one error line says. */
      exit?: { code: number; error?: RegExp };
    }
    | {
      /** Neither side logs a close for this long. */
      unnoticedForMs: number;
      /** Then the cut link comes back, and this line still echoes on the same connection. */
      thenEcho?: string;
    };
}

const SCENARIOS: Scenario[] = [
  {
    name:
      "a server with keepalive 1s/1s/3 notices a cut client link as keepalive-timeout in about 4 s",
    label: "server keepalive 1s/1s/3, cut client link",
    server: [...FAST_KEEPALIVE, ...NO_HEARTBEAT],
    client: [],
    opens: { server: { keepalive: FAST_READ_BACK } },
    fault: { cut: "client" },
    // idle 1 s + 3 probes × 1 s after the last ACK, which came 0–1 s before the cut.
    expect: {
      noticedBy: "server",
      cause: "keepalive-timeout",
      code: 1006,
      clean: false,
      withinMs: [2_500, 7_000],
    },
  },
  {
    name:
      "with --no-keepalive the same cut goes unnoticed for 8 s, and the connection still works after the link returns",
    label: "no keepalive, no heartbeat, cut client link",
    // The kernel defaults in the server's namespace are 1s/1s/3 too, so only
    // SO_KEEPALIVE=0 can keep the cut unnoticed.
    serverSysctl: {
      "net.ipv4.tcp_keepalive_time": "1",
      "net.ipv4.tcp_keepalive_intvl": "1",
      "net.ipv4.tcp_keepalive_probes": "3",
    },
    server: ["--no-keepalive", ...NO_HEARTBEAT],
    client: ["--no-keepalive"],
    opens: { server: { "keepalive.enabled": false } },
    fault: { cut: "client" },
    // Nothing noticed because nothing was probed: the link comes back and the
    // same connection carries a message both ways.
    expect: { unnoticedForMs: 8_000, thenEcho: "still here" },
  },
  {
    name: "a frozen (SIGSTOP) client is closed as pong-timeout by the heartbeat, not by keepalive",
    label: "server heartbeat 1s/2s, client frozen",
    server: [...FAST_KEEPALIVE, "--ping-interval", "1s", "--pong-timeout", "2s"],
    client: [],
    opens: { server: { keepalive: FAST_READ_BACK } },
    fault: { freeze: "client" },
    // 2 s after the last pong, which came 0–1 s before the freeze.
    expect: { noticedBy: "server", cause: "pong-timeout", withinMs: [800, 6_000] },
  },
  {
    name:
      "keepalive 1s/1s/3 alone does not notice a frozen client within 8 s: its kernel answers the probes",
    label: "server keepalive 1s/1s/3 only, client frozen",
    server: [...FAST_KEEPALIVE, ...NO_HEARTBEAT],
    client: [],
    opens: { server: { keepalive: FAST_READ_BACK } },
    fault: { freeze: "client" },
    expect: { unnoticedForMs: 8_000 },
  },
  {
    name:
      "a client with keepalive 1s/1s/3 notices a cut server link as keepalive-timeout, says so on stderr and exits 1",
    label: "client keepalive 1s/1s/3, cut server link",
    server: ["--no-keepalive", ...NO_HEARTBEAT],
    client: FAST_KEEPALIVE,
    opens: { client: { keepalive: FAST_READ_BACK } },
    fault: { cut: "server" },
    expect: {
      noticedBy: "client",
      cause: "keepalive-timeout",
      withinMs: [2_500, 7_000],
      exit: { code: 1, error: /keepalive-timeout/ },
    },
  },
  {
    name:
      "a client message sent into a cut link fails as user-timeout about 3 s later with --tcp-user-timeout 3s",
    label: "client --tcp-user-timeout 3s, send into cut link",
    server: ["--no-keepalive", ...NO_HEARTBEAT],
    // Keepalive 1s/1s/3 is on too: it must not take the credit, since probes
    // stop while data waits for an ACK.
    client: [...FAST_KEEPALIVE, "--tcp-user-timeout", "3s"],
    opens: { client: { user_timeout_ms: 3000 } },
    fault: { cut: "server", send: "into the void" },
    expect: {
      noticedBy: "client",
      cause: "user-timeout",
      withinMs: [2_500, 7_000],
      exit: { code: 1 },
    },
  },
  {
    name: "a server ping sent into a cut link fails as user-timeout with --tcp-user-timeout 3s",
    label: "server --tcp-user-timeout 3s, ping into cut link",
    // Go's default keepalive (15 s idle) cannot fire within the test; the ping
    // every second is the data in flight.
    server: ["--tcp-user-timeout", "3s", "--ping-interval", "1s", "--pong-timeout", "0"],
    client: [],
    opens: { server: { user_timeout_ms: 3000 } },
    fault: { cut: "client" },
    // The first ping after the cut goes out within 1 s, then 3 s unacknowledged.
    expect: { noticedBy: "server", cause: "user-timeout", withinMs: [2_500, 8_000] },
  },
  {
    name:
      "an idle echo connection with --tcp-user-timeout 3s and keepalive is named keepalive-timeout when cut, though the server sent last",
    label: "server keepalive 1s/1s/3 + --tcp-user-timeout 3s, idle after an echo, cut client link",
    server: [...FAST_KEEPALIVE, ...NO_HEARTBEAT, "--tcp-user-timeout", "3s"],
    client: [],
    // The echo is the last thing the server sends, and the client's kernel acknowledges it.
    echoFirst: "echo me",
    fault: { cut: "client" },
    // With TCP_USER_TIMEOUT set, Linux ends probing once the timeout has passed since the last ACK.
    expect: { noticedBy: "server", cause: "keepalive-timeout", withinMs: [1_500, 7_000] },
  },
];

/** The detection times measured by this file, printed together at the end. */
const measured: string[] = [];

/** Plays one scenario in two fresh namespaces. */
async function run(row: Scenario): Promise<void> {
  await using net = await NetnsPair.create();
  const ns = { server: net.a, client: net.b };
  for (const [name, value] of Object.entries(row.serverSysctl ?? {})) {
    await net.sysctl(net.a, name, value);
  }
  await using server = await startServer(row.server, {
    ns: net.a.ns,
    host: net.a.addr,
    timeoutMs: START_MS,
  });
  await using client = Program.start(
    "client.ts",
    ["--log-format", "json", server.echoUrl, "--wait", "60s", ...row.client],
    { stdin: true, ns: net.b.ns },
  );
  const proc = { server: server.proc, client };
  for (const side of ["server", "client"] as const) {
    const open = await proc[side].waitForEvent("open", undefined, { timeoutMs: START_MS });
    for (const [path, value] of Object.entries(row.opens?.[side] ?? {})) {
      assert.deepEqual(field(open, path), value, `${side} open event: ${path}`);
    }
  }
  if (row.echoFirst) await echo(client, row.echoFirst);
  await sleep(SETTLE_MS);

  let faultAt: number;
  let after: string;
  if ("freeze" in row.fault) {
    proc[row.fault.freeze].kill("SIGSTOP");
    faultAt = Date.now();
    after = "SIGSTOP";
  } else {
    await net.setLink(ns[row.fault.cut], false);
    faultAt = Date.now();
    after = "the cut";
    if (row.fault.send) {
      await client.write(`${row.fault.send}\n`);
      faultAt = Date.now();
      after = "the send";
    }
  }

  const expect = row.expect;
  if ("unnoticedForMs" in expect) {
    const early = await server.proc.waitForEvent("close", undefined, {
      timeoutMs: expect.unnoticedForMs,
    }).catch((err) => {
      if (err instanceof TimeoutError) return null;
      throw err;
    });
    assert.equal(early, null, server.proc.output());
    assert.equal(client.events.find((e) => e.event === "close"), undefined, client.output());
    if (expect.thenEcho) {
      if ("cut" in row.fault) await net.setLink(ns[row.fault.cut], true);
      await echo(client, expect.thenEcho);
    }
    measured.push(`${row.label}: not noticed in ${expect.unnoticedForMs / 1000} s`);
    return;
  }
  const watcher = proc[expect.noticedBy];
  const close = await watcher.waitForEvent("close", undefined, { timeoutMs: CLOSE_WAIT_MS });
  const took = watcher.arrivedAt(close) - faultAt;
  assert.equal(close.cause, expect.cause, watcher.output());
  if (expect.code !== undefined) assert.equal(close.code, expect.code);
  if (expect.clean !== undefined) assert.equal(close.clean, expect.clean);
  const [lo, hi] = expect.withinMs;
  assert.ok(
    took >= lo && took <= hi,
    `${expect.cause} detection took ${took} ms, expected ${lo}–${hi} ms`,
  );
  if (expect.exit) {
    const exit = await watcher.wait(10_000);
    assert.equal(exit.code, expect.exit.code, watcher.output());
    if (expect.exit.error) {
      const errors = watcher.events.filter((e) => e.event === "error");
      assert.equal(errors.length, 1, watcher.output());
      assert.match(String(errors[0].message), expect.exit.error);
    }
  }
  measured.push(`${row.label}: ${expect.cause} after ${seconds(took)}`);
  console.log(`detected: ${expect.cause} ${seconds(took)} after ${after}`);
}

/** The client sends `line` and the echo comes back. */
async function echo(client: Program, line: string): Promise<void> {
  await client.write(`${line}\n`);
  await client.until(`the echo of "${line}"`, () => client.stdout.includes(`${line}\n`), 20_000);
}

/** The value at a dotted `path` (e.g. `keepalive.enabled`) of an event. */
function field(e: LogEvent, path: string): unknown {
  return path.split(".").reduce<unknown>(
    (v, key) => (v as Record<string, unknown> | undefined)?.[key],
    e,
  );
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

for (const row of SCENARIOS) {
  Deno.test({ ...notRun(row.name, skip), fn: () => run(row) });
}

Deno.test({
  ...notRun("netns detection times", skip),
  fn() {
    console.log(measured.map((line) => `  ${line}`).join("\n"));
  },
});
