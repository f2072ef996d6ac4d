/**
 * `client.ts --probe-idle`: the schedule and the bracket as pure functions,
 * then the real program against paths that kill idle connections in each
 * way it names — our own server dropping them with a FIN or a reset
 * (`--drop-after`), a server that stops answering (`--no-pong`), a real
 * nginx with `proxy_read_timeout 3s` — and against a path that kills
 * nothing. The NAT, which forgets silently, is in `natlab_test.ts`.
 */

import assert from "node:assert/strict";
import {
  type CheckOutcome,
  describeResult,
  probeResult,
  probeSchedule,
  recommend,
} from "../app/client/probe.ts";
import { needs } from "./helpers/needs.ts";
import { startNginx } from "./helpers/nginx.ts";
import {
  hasStackTrace,
  type LogEvent,
  plainLines,
  runClient,
  startServer,
} from "./helpers/process.ts";

/** Our server with its heartbeat off, so that nothing but the probe moves on the connections. */
const QUIET_SERVER = ["--ping-interval", "0", "--pong-timeout", "0"];
/** Bound on a whole probe run up to 4 s or 16 s (the last check plus the pong wait, and slack). */
const SHORT_PROBE_MS = 30_000;
const LONG_PROBE_MS = 60_000;

/** Runs a probe and returns its exit, its `probe` event, its `check` events and its last stdout line. */
async function probe(url: string, args: string[], timeoutMs = SHORT_PROBE_MS) {
  const exit = await runClient(
    ["--probe-idle", "--log-format", "json", ...args, url],
    { timeoutMs },
  );
  assert.ok(!hasStackTrace(exit.stderr), exit.stderr);
  const result = exit.events.find((e) => e.event === "probe");
  const checks = exit.events.filter((e) => e.event === "check");
  const lines = exit.stdout.trimEnd().split("\n");
  return { ...exit, result, checks, last: lines.at(-1) ?? "", lines };
}

/** The `check` event of the connection whose checkpoint is `seconds`. */
function checkAt(checks: LogEvent[], seconds: number): LogEvent {
  const c = checks.find((e) => e.checkpoint_s === seconds);
  assert.ok(c, `no check at ${seconds}s: ${JSON.stringify(checks)}`);
  return c;
}

// ---------------------------------------------------------------------------
// The pure parts

Deno.test("probeSchedule() doubles from min and ends at max exactly", () => {
  assert.deepEqual(probeSchedule(1_000, 16_000), [1_000, 2_000, 4_000, 8_000, 16_000]);
  assert.deepEqual(
    probeSchedule(15_000, 600_000),
    [15_000, 30_000, 60_000, 120_000, 240_000, 480_000, 600_000],
  );
  assert.deepEqual(probeSchedule(5_000, 5_000), [5_000]);
  assert.deepEqual(probeSchedule(1_000, 3_000), [1_000, 2_000, 3_000]);
  assert.throws(() => probeSchedule(0, 1_000), RangeError);
  assert.throws(() => probeSchedule(2_000, 1_000), RangeError);
});

const outcome = (
  checkpointMs: number,
  result: CheckOutcome["result"],
  idleMs: number,
  cause?: string,
): CheckOutcome => ({ id: 0, checkpointMs, result, idleMs, cause });

Deno.test("probeResult() brackets the timeout: the longest idle survived below the shortest that killed", () => {
  const r = probeResult([
    outcome(1_000, "alive", 1_002),
    outcome(2_000, "alive", 2_001),
    outcome(4_000, "alive", 4_003),
    outcome(8_000, "dead", 8_001, "timeout"),
    outcome(16_000, "skipped", 13_000),
  ]);
  assert.deepEqual(r, { lowerMs: 4_003, upperMs: 8_001, cause: "timeout" });
  assert.equal(describeResult(r), "idle timeout between 4s and 8s (timeout)");
  // Deaths noticed while idle (a proxy's FIN) give the idle at death; the shortest wins.
  const proxy = probeResult([
    outcome(1_000, "alive", 1_001),
    outcome(2_000, "alive", 2_000),
    outcome(4_000, "dead", 3_020, "eof"),
    outcome(8_000, "dead", 3_010, "eof"),
  ]);
  assert.equal(describeResult(proxy), "idle timeout between 2s and 3s (eof)");
  // A cut while idle, before the first checkpoint (tinyproxy's Timeout 5 under the default 15 s):
  // the connection lived every whole second below it.
  const early = probeResult([
    { ...outcome(240_000, "dead", 4_991, "eof"), noticed: "idle" },
    outcome(15_000, "skipped", 4_993),
  ]);
  assert.deepEqual(early, { lowerMs: 4_000, upperMs: 4_991, cause: "eof" });
  assert.equal(describeResult(early), "idle timeout between 4s and 5s (eof)");
  // Seen a few ms past the whole second (--drop-after 3s on a fast machine): still 2s to 3s.
  const late = probeResult([
    outcome(1_000, "alive", 1_001),
    outcome(2_000, "alive", 2_002),
    { ...outcome(4_000, "dead", 3_006, "eof"), noticed: "idle" },
  ]);
  assert.deepEqual(late, { lowerMs: 2_002, upperMs: 3_006, cause: "eof" });
  assert.equal(describeResult(late), "idle timeout between 2s and 3s (eof)");
  // Nothing killed: the longest idle survived.
  const none = probeResult([outcome(1_000, "alive", 1_001), outcome(2_000, "alive", 2_004)]);
  assert.deepEqual(none, { lowerMs: 2_004, upperMs: null, cause: null });
  assert.equal(describeResult(none), "no idle timeout up to 2s");
  // The first checkpoint already died: the lower bound is 0.
  assert.equal(
    describeResult(probeResult([outcome(1_000, "dead", 1_000, "reset")])),
    "idle timeout between 0s and 1s (reset)",
  );
});

Deno.test("recommend() halves the longest idle survived; keepalive only where the path did not end with a FIN", () => {
  const nat = recommend({ lowerMs: 4_000, upperMs: 8_000, cause: "timeout" });
  assert.deepEqual([nat.pingIntervalS, nat.keepAliveIdleS], [2, 2]);
  assert.match(nat.text, /--ping-interval 2s or --keepalive-idle 2s/);
  const proxy = recommend({ lowerMs: 2_000, upperMs: 3_000, cause: "eof" });
  assert.deepEqual([proxy.pingIntervalS, proxy.keepAliveIdleS], [1, null]);
  assert.match(proxy.text, /TCP keepalive will not help/);
  const none = recommend({ lowerMs: 600_000, upperMs: null, cause: null });
  assert.equal(none.pingIntervalS, 300);
  assert.doesNotMatch(none.text, /was on/);
  // Keepalive probes shorter than what was found may be what kept the flows.
  assert.match(
    recommend({ lowerMs: 16_000, upperMs: null, cause: null }, 2_000).text,
    /TCP keepalive \(idle 2s\) was on/,
  );
  assert.doesNotMatch(
    recommend({ lowerMs: 4_000, upperMs: 8_000, cause: "timeout" }, 15_000).text,
    /was on/,
  );
  const tooShort = recommend({ lowerMs: 0, upperMs: 1_000, cause: "reset" });
  assert.equal(tooShort.pingIntervalS, null);
  assert.match(tooShort.text, /smaller --probe-min/);
});

// ---------------------------------------------------------------------------
// The program

Deno.test("--probe-idle on a path that kills nothing reports no idle timeout up to --probe-max, and exits 0", async () => {
  await using server = await startServer(QUIET_SERVER);
  const p = await probe(server.echoUrl, ["--probe-min", "1s", "--probe-max", "2s"]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.last, "no idle timeout up to 2s");
  assert.deepEqual(
    [p.result?.lower_s, p.result?.upper_s, p.result?.cause],
    [2, null, null],
    p.stderr,
  );
  assert.deepEqual(p.checks.map((c) => [c.checkpoint_s, c.result]), [[1, "alive"], [2, "alive"]]);
  for (const c of p.checks) assert.equal(typeof c.rtt_ms, "number");
  // One silent connection per checkpoint, each opened and closed cleanly after its check.
  const closes = p.events.filter((e) => e.event === "close");
  assert.equal(closes.length, 2);
  for (const c of closes) {
    assert.equal(c.code, 1000);
    assert.deepEqual((c.pings as Record<string, number>).sent, 1);
  }
});

Deno.test("--probe-idle names a FIN after 1.5 s of idle (server --drop-after 1500ms) as eof, between 1s and 1.5s", async () => {
  await using server = await startServer([...QUIET_SERVER, "--drop-after", "1500ms"]);
  const p = await probe(server.echoUrl, ["--probe-min", "1s", "--probe-max", "4s"]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.last, "idle timeout between 1s and 1.5s (eof)");
  assert.deepEqual([p.result?.lower_s, p.result?.upper_s, p.result?.cause], [1, 1.5, "eof"]);
  assert.equal(checkAt(p.checks, 1).result, "alive");
  // Noticed as it happened, while idle, not by a later ping; a connection whose FIN came
  // a moment after the first one's was no longer needed.
  const later = [checkAt(p.checks, 2), checkAt(p.checks, 4)];
  assert.ok(later.some((c) => c.result === "dead" && c.noticed === "idle"), JSON.stringify(later));
  for (const c of later) {
    assert.ok(c.result === "dead" || c.result === "skipped", c.result as string);
  }
});

Deno.test("--probe-idle names a reset after 1.5 s of idle (server --drop-after 1500ms --drop-mode rst) as reset", async () => {
  await using server = await startServer([
    ...QUIET_SERVER,
    "--drop-after",
    "1500ms",
    "--drop-mode",
    "rst",
  ]);
  const p = await probe(server.echoUrl, ["--probe-min", "1s", "--probe-max", "4s"]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.last, "idle timeout between 1s and 1.5s (reset)");
  assert.equal(p.result?.cause, "reset");
});

Deno.test("--probe-idle against a server that answers no ping (--no-pong) reports silence then timeout from the first check", async () => {
  await using server = await startServer([...QUIET_SERVER, "--no-pong"]);
  const p = await probe(server.echoUrl, ["--probe-min", "1s", "--probe-max", "8s"]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.last, "idle timeout between 0s and 1s (timeout)");
  assert.deepEqual(
    [checkAt(p.checks, 1).result, checkAt(p.checks, 1).cause, checkAt(p.checks, 1).noticed],
    ["dead", "timeout", "ping"],
  );
  // The 2 s and 4 s checks came before the 1 s one had waited out its pong; the 8 s
  // connection was not needed once a 1 s idle was known to kill.
  assert.deepEqual([checkAt(p.checks, 2).result, checkAt(p.checks, 4).result], ["dead", "dead"]);
  assert.equal(checkAt(p.checks, 8).result, "skipped");
  assert.match(p.lines[0], /smaller --probe-min/);
});

Deno.test("--probe-idle notices a server heartbeat on its silent connections and says it limits the probe", async () => {
  await using server = await startServer(["--ping-interval", "1s", "--pong-timeout", "5s"]);
  const p = await probe(server.echoUrl, ["--probe-min", "2s", "--probe-max", "2s"]);
  assert.equal(p.code, 0, p.stderr);
  const warning = p.events.find((e) => e.event === "probe-warning");
  assert.ok(warning, p.stderr);
  assert.match(String(warning.message), /--ping-interval 0/);
  // The idle measured is the time since the server's last ping, not since the open.
  assert.ok(Number(checkAt(p.checks, 2).idle_s) < 1.5, JSON.stringify(p.checks));
});

Deno.test(
  needs(
    "--probe-idle through nginx with proxy_read_timeout 3s finds the timeout between 2s and 3s, as eof, and recommends pings only",
    "nginx",
  ),
  async () => {
    await using server = await startServer(QUIET_SERVER);
    await using nginx = await startNginx({ upstreamPort: server.port, timeout: "3s" });
    const p = await probe(
      nginx.echoUrl,
      ["--probe-min", "1s", "--probe-max", "16s"],
      LONG_PROBE_MS,
    );
    assert.equal(p.code, 0, p.stderr);
    // An upper bound of 2.9 s is nginx's timer firing a little before ours reads 3 s (allowed below).
    assert.match(p.last, /^idle timeout between 2s and (2\.9|3(\.\d)?)s \(eof\)$/, p.stdout);
    const { lower_s, upper_s, cause } = p.result as Record<string, number | string>;
    assert.equal(cause, "eof");
    assert.ok(
      Number(lower_s) < 3 && Number(upper_s) >= 2.9 && Number(upper_s) <= 4,
      `bracket ${lower_s}–${upper_s} s around nginx's 3 s`,
    );
    assert.match(p.lines[0], /--ping-interval 1s \(/);
    assert.doesNotMatch(p.lines[0], /--keepalive-idle/);
    console.log(p.lines.join("\n"));
  },
);

Deno.test("--probe-idle usage errors: its own flags alone, the flags it cannot work with, a max below the min", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--probe-min", "1s"], /--probe-min goes with --probe-idle/],
    [["--probe-idle", "--send", "x"], /--probe-idle cannot be combined with --send/],
    [["--probe-idle", "--ping-interval", "1s"], /cannot be combined with --ping-interval/],
    [
      ["--probe-idle", "--probe-min", "4s", "--probe-max", "2s"],
      /--probe-max 2s must not be below/,
    ],
    [["--probe-idle", "--probe-min", "0"], /--probe-min must be positive/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const exit = await runClient(args);
      assert.equal(exit.code, 2, exit.stderr);
      assert.match(plainLines(exit.stderr)[0], message);
    });
  }
});
