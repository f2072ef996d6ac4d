import assert from "node:assert/strict";
import { UsageError } from "../app/common/errors.ts";
import {
  DEFAULT_KEEPALIVE_COUNT,
  DEFAULT_KEEPALIVE_IDLE_MS,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  type KeepAlivePolicy,
  resolveKeepAlive,
  resolveKeepAliveNamed,
  resolveSingleKeepAlive,
  worstCaseDetectionMs,
} from "../lib/tcp/keepalive.ts";
import type { SocketOptions } from "../lib/tcp/sockopt.ts";
import { keepAliveFromFlags, keepAliveLogFields } from "../app/common/keepalive.ts";
import { formatKeepAliveReport, keepAliveReport } from "../app/common/report.ts";

/** The values of a policy as a tuple, for short assertions. */
function values(p: KeepAlivePolicy) {
  return [p.enabled, p.idle, p.interval, p.count];
}

/** Asserts `fn` throws exactly `type` (not a subclass such as UsageError) with `message`. */
function throwsExactly(
  fn: () => unknown,
  type: typeof RangeError | typeof TypeError | typeof UsageError,
  message: string | RegExp,
) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof Error, `${err} is an Error`);
    assert.equal(err.constructor, type, `${err.constructor.name}: ${err.message}`);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Library: lib/tcp/keepalive.ts (milliseconds, RangeError / TypeError)
// ---------------------------------------------------------------------------

Deno.test("Go's default constants are 15 s / 15 s / 9, in ms", () => {
  assert.deepEqual(
    [DEFAULT_KEEPALIVE_IDLE_MS, DEFAULT_KEEPALIVE_INTERVAL_MS, DEFAULT_KEEPALIVE_COUNT],
    [15_000, 15_000, 9],
  );
});

Deno.test("resolveKeepAlive() gives zero or absent fields Go's defaults", () => {
  for (
    const cfg of [
      undefined,
      true,
      {},
      { enable: true },
      { enable: true, idle: 0, interval: 0, count: 0 },
    ]
  ) {
    const p = resolveKeepAlive(cfg);
    assert.deepEqual(values(p), [true, 15_000, 15_000, 9], JSON.stringify(cfg));
    assert.deepEqual(p.sources, { idle: "default", interval: "default", count: "default" });
  }
});

Deno.test("resolveKeepAlive() leaves negative fields to the OS", () => {
  const p = resolveKeepAlive({ enable: true, idle: -1, interval: 20_000, count: -5 });
  assert.deepEqual(values(p), [true, null, 20_000, null]);
  assert.deepEqual(p.sources, { idle: "os", interval: "given", count: "os" });
  assert.equal(resolveKeepAlive({ interval: -Infinity }).interval, null);
});

Deno.test("resolveKeepAlive() rounds durations up to whole seconds", () => {
  assert.equal(resolveKeepAlive({ idle: 1 }).idle, 1_000);
  assert.equal(resolveKeepAlive({ idle: 0.000001 }).idle, 1_000, "1 ns rounds up to 1 s");
  assert.equal(resolveKeepAlive({ idle: 1_500 }).idle, 2_000);
  assert.equal(resolveKeepAlive({ interval: 15_000 }).interval, 15_000);
  assert.equal(resolveKeepAlive({ interval: 15_001 }).interval, 16_000);
});

Deno.test("resolveKeepAlive() keeps Enable=false as SO_KEEPALIVE off", () => {
  assert.equal(resolveKeepAlive({ enable: false }).enabled, false);
  assert.equal(resolveKeepAlive(false).enabled, false);
});

Deno.test("resolveKeepAlive() accepts Linux's limits and rejects one past them with a RangeError", () => {
  const top = resolveKeepAlive({ idle: 32_767_000, interval: 32_767_000, count: 127 });
  assert.deepEqual(values(top), [true, 32_767_000, 32_767_000, 127]);
  const bottom = resolveKeepAlive({ idle: 1, interval: 1, count: 1 });
  assert.deepEqual(values(bottom), [true, 1_000, 1_000, 1]);
  throwsExactly(
    () => resolveKeepAlive({ idle: 32_767_001 }),
    RangeError,
    "KeepAliveConfig.Idle 32767001ms is out of range: Linux allows 1s to 32767s",
  );
  throwsExactly(
    () => resolveKeepAlive({ interval: 32_768_000 }),
    RangeError,
    "KeepAliveConfig.Interval 32768000ms is out of range: Linux allows 1s to 32767s",
  );
  throwsExactly(
    () => resolveKeepAlive({ idle: Infinity }),
    RangeError,
    /^KeepAliveConfig\.Idle .* is out of range/,
  );
  throwsExactly(
    () => resolveKeepAlive({ count: 128 }),
    RangeError,
    "KeepAliveConfig.Count 128 is out of range: Linux allows 1 to 127",
  );
});

Deno.test("resolveKeepAlive() throws a TypeError for NaN, non-numbers and a non-integer count", () => {
  throwsExactly(
    () => resolveKeepAlive({ idle: NaN }),
    TypeError,
    /^KeepAliveConfig\.Idle .*is not a duration in milliseconds$/,
  );
  throwsExactly(
    () => resolveKeepAlive({ interval: "15000" as unknown as number }),
    TypeError,
    /^KeepAliveConfig\.Interval .*is not a duration in milliseconds$/,
  );
  throwsExactly(
    () => resolveKeepAlive({ count: 2.5 }),
    TypeError,
    "KeepAliveConfig.Count 2.5 is not a whole number of probes",
  );
  throwsExactly(() => resolveKeepAlive({ count: NaN }), TypeError, /not a whole number/);
});

Deno.test("resolveKeepAliveNamed() names values by `names` in its errors", () => {
  throwsExactly(
    () => resolveKeepAliveNamed({ idle: 40_000_000 }, { idle: "idle (40000 s)" }),
    RangeError,
    "idle (40000 s) is out of range: Linux allows 1s to 32767s",
  );
  throwsExactly(
    () => resolveKeepAliveNamed({ interval: NaN }, { interval: "my interval" }),
    TypeError,
    "my interval is not a duration in milliseconds",
  );
  throwsExactly(
    () => resolveKeepAliveNamed({ count: 500 }, { idle: "unused", count: "probes" }),
    RangeError,
    "probes is out of range: Linux allows 1 to 127",
  );
});

Deno.test("resolveSingleKeepAlive() follows Go's Dialer.KeepAlive", async (t) => {
  await t.step("0 → on with 15/15/9", () => {
    const p = resolveSingleKeepAlive(0);
    assert.deepEqual(values(p), [true, 15_000, 15_000, 9]);
    assert.deepEqual(p.sources, { idle: "default", interval: "default", count: "default" });
  });
  await t.step("negative → off, nothing tuned", () => {
    for (const ms of [-1, -60_000]) {
      const p = resolveSingleKeepAlive(ms);
      assert.deepEqual(values(p), [false, null, null, null]);
      assert.deepEqual(p.sources, { idle: "os", interval: "os", count: "os" });
    }
  });
  await t.step("positive → idle only: 30 s gives 30/15/9", () => {
    const p = resolveSingleKeepAlive(30_000);
    assert.deepEqual(values(p), [true, 30_000, 15_000, 9]);
    assert.deepEqual(p.sources, { idle: "given", interval: "default", count: "default" });
  });
  await t.step("positive rounds up", () => {
    assert.equal(resolveSingleKeepAlive(1).idle, 1_000);
    assert.equal(resolveSingleKeepAlive(2_001).idle, 3_000);
  });
  await t.step("past Linux's limit is a RangeError naming Go's field or `name`", () => {
    throwsExactly(
      () => resolveSingleKeepAlive(40_000_000),
      RangeError,
      "KeepAlive 40000000ms is out of range: Linux allows 1s to 32767s",
    );
    throwsExactly(
      () => resolveSingleKeepAlive(40_000_000, "the dial keepalive"),
      RangeError,
      "the dial keepalive is out of range: Linux allows 1s to 32767s",
    );
  });
  await t.step("NaN is a TypeError", () => {
    throwsExactly(() => resolveSingleKeepAlive(NaN), TypeError, /is not a duration/);
  });
});

Deno.test("worstCaseDetectionMs() is idle + interval × count", () => {
  assert.equal(worstCaseDetectionMs(15_000, 15_000, 9), 150_000);
  assert.equal(worstCaseDetectionMs(7_200_000, 75_000, 9), 7_875_000);
  assert.equal(worstCaseDetectionMs(1_000, 1_000, 3), 4_000);
});

// ---------------------------------------------------------------------------
// CLI: app/common/keepalive.ts (flags in Go's duration syntax, UsageError)
// ---------------------------------------------------------------------------

Deno.test("keepAliveFromFlags() with no flags gives Go's defaults", () => {
  const p = keepAliveFromFlags({});
  assert.deepEqual(values(p), [true, 15_000, 15_000, 9]);
  assert.deepEqual(p.sources, { idle: "default", interval: "default", count: "default" });
});

Deno.test("keepAliveFromFlags() treats --keepalive as Go's single value", () => {
  const p = keepAliveFromFlags({ keepalive: "30s" });
  assert.deepEqual(values(p), [true, 30_000, 15_000, 9]);
  assert.deepEqual(p.sources, { idle: "given", interval: "default", count: "default" });
  assert.deepEqual(values(keepAliveFromFlags({ keepalive: "0" })), [true, 15_000, 15_000, 9]);
  assert.deepEqual(values(keepAliveFromFlags({ keepalive: "2.001s" })), [true, 3_000, 15_000, 9]);
  assert.equal(keepAliveFromFlags({ keepalive: "-1s" }).enabled, false);
});

Deno.test("keepAliveFromFlags() builds a KeepAliveConfig from the per-field flags", () => {
  const p = keepAliveFromFlags({ idle: "5s", interval: "2s", count: "3" });
  assert.deepEqual(values(p), [true, 5_000, 2_000, 3]);
  assert.deepEqual(p.sources, { idle: "given", interval: "given", count: "given" });
  const partial = keepAliveFromFlags({ interval: "1m" });
  assert.deepEqual(values(partial), [true, 15_000, 60_000, 9]);
  assert.deepEqual(partial.sources, { idle: "default", interval: "given", count: "default" });
  assert.equal(keepAliveFromFlags({ idle: "1500ms" }).idle, 2_000, "rounded up as Go does");
});

Deno.test("keepAliveFromFlags() leaves the count to the kernel when negative, default when 0", () => {
  const os = keepAliveFromFlags({ count: "-1" });
  assert.equal(os.count, null);
  assert.equal(os.sources.count, "os");
  const zero = keepAliveFromFlags({ count: "0" });
  assert.equal(zero.count, 9);
  assert.equal(zero.sources.count, "default");
  const idle = keepAliveFromFlags({ idle: "-1s" });
  assert.equal(idle.idle, null);
  assert.equal(idle.sources.idle, "os");
});

Deno.test("keepAliveFromFlags() --no-keepalive turns keepalive off", () => {
  assert.deepEqual(values(keepAliveFromFlags({ noKeepalive: true })), [false, null, null, null]);
});

Deno.test("keepAliveFromFlags() refuses --keepalive mixed with per-field flags", () => {
  throwsExactly(
    () => keepAliveFromFlags({ keepalive: "30s", idle: "10s" }),
    UsageError,
    /^--keepalive cannot be combined with --keepalive-idle: .*ignores.*use --keepalive-idle instead$/,
  );
  throwsExactly(
    () => keepAliveFromFlags({ keepalive: "30s", interval: "1s", count: "3" }),
    UsageError,
    /^--keepalive cannot be combined with --keepalive-interval, --keepalive-count:/,
  );
});

Deno.test("keepAliveFromFlags() refuses --no-keepalive with any tuning flag", () => {
  for (
    const [f, named] of [
      [{ keepalive: "30s" }, "--keepalive"],
      [{ idle: "1s" }, "--keepalive-idle"],
      [{ interval: "1s" }, "--keepalive-interval"],
      [{ count: "3" }, "--keepalive-count"],
    ] as const
  ) {
    throwsExactly(
      () => keepAliveFromFlags({ noKeepalive: true, ...f }),
      UsageError,
      `--no-keepalive cannot be combined with ${named}: ` +
        "it turns keepalive off, so there is nothing to tune",
    );
  }
});

Deno.test("keepAliveFromFlags() names the flag in duration errors", () => {
  throwsExactly(
    () => keepAliveFromFlags({ idle: "15" }),
    UsageError,
    '--keepalive-idle: invalid duration "15": missing unit (did you mean 15s?)',
  );
  assert.throws(() => keepAliveFromFlags({ keepalive: "soon" }), /^UsageError: --keepalive: /);
  throwsExactly(
    () => keepAliveFromFlags({ count: "3.5" }),
    UsageError,
    /^--keepalive-count: "3.5" is not a whole number/,
  );
  throwsExactly(() => keepAliveFromFlags({ count: "nine" }), UsageError, /not a whole number/);
});

Deno.test("keepAliveFromFlags() turns the library's RangeError into a UsageError naming the flag and its text", () => {
  // The library layer throws a RangeError naming the value as it was given...
  throwsExactly(
    () => resolveKeepAliveNamed({ idle: 40_000_000 }, { idle: "--keepalive-idle 40000s" }),
    RangeError,
    "--keepalive-idle 40000s is out of range: Linux allows 1s to 32767s",
  );
  // ...and the CLI layer passes the same message on as a usage error.
  throwsExactly(
    () => keepAliveFromFlags({ idle: "40000s" }),
    UsageError,
    "--keepalive-idle 40000s is out of range: Linux allows 1s to 32767s",
  );
  throwsExactly(
    () => keepAliveFromFlags({ interval: "10h" }),
    UsageError,
    "--keepalive-interval 10h is out of range: Linux allows 1s to 32767s",
  );
  throwsExactly(
    () => keepAliveFromFlags({ count: "500" }),
    UsageError,
    "--keepalive-count 500 is out of range: Linux allows 1 to 127",
  );
  throwsExactly(
    () => keepAliveFromFlags({ keepalive: "40000s" }),
    UsageError,
    "--keepalive 40000s is out of range: Linux allows 1s to 32767s",
  );
});

Deno.test("a policy from the flags goes to serve() and dial() as it is: resolveKeepAlive() returns it unchanged", () => {
  for (
    const flags of [{}, { keepalive: "30s" }, { idle: "-1s", interval: "2s", count: "-1" }, {
      count: "4",
    }, { noKeepalive: true }]
  ) {
    const policy = keepAliveFromFlags(flags);
    assert.equal(resolveKeepAlive(policy), policy, JSON.stringify(flags));
  }
  assert.deepEqual(values(keepAliveFromFlags({ idle: "-1s" })), [true, null, 15_000, 9]);
  assert.deepEqual(values(keepAliveFromFlags({ noKeepalive: true })), [false, null, null, null]);
});

Deno.test("keepAliveLogFields() logs the read-back values in seconds and the user timeout in ms", () => {
  const verified: SocketOptions = {
    keepAlive: true,
    idle: 30_000,
    interval: 15_000,
    count: 9,
    noDelay: true,
    userTimeout: 7_000,
    verified: true,
    errors: [],
  };
  assert.deepEqual(keepAliveLogFields(verified), {
    keepalive: { enabled: true, idle_s: 30, interval_s: 15, count: 9, verified: true },
    user_timeout_ms: 7_000,
  });
  const unknown: SocketOptions = {
    keepAlive: true,
    idle: null,
    interval: null,
    count: null,
    noDelay: true,
    userTimeout: 0,
    verified: false,
    errors: [],
    reason: "--allow-ffi not granted",
  };
  assert.deepEqual(keepAliveLogFields(unknown), {
    keepalive: { enabled: true, idle_s: null, interval_s: null, count: null, verified: false },
    user_timeout_ms: 0,
  });
});

/** The kernel's usual defaults, in ms as the library reads them. */
const KERNEL = { idle: 7_200_000, interval: 75_000, count: 9 };

Deno.test("formatKeepAliveReport() shows sources, kernel values and the 150 s worst case", () => {
  const text = formatKeepAliveReport({ policy: keepAliveFromFlags({}), kernel: KERNEL });
  assert.match(text, /keepalive: on/);
  assert.match(text, /^ +idle +15s +default +15s +7200s$/m);
  assert.match(text, /^ +interval +15s +default +15s +75s$/m);
  assert.match(text, /^ +count +9 +default +9 +9$/m);
  assert.match(text, /worst case to notice a dead idle peer: 150s = idle 15s/);
  assert.match(text, /tcp_keepalive_\{time,intvl,probes\}/);
});

Deno.test("formatKeepAliveReport() names a given value's source 'flag'", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({ idle: "1500ms", interval: "1m", count: "3" }),
    kernel: KERNEL,
  });
  assert.match(text, /^ +idle +2s +flag +15s +7200s$/m);
  assert.match(text, /^ +interval +60s +flag +15s +75s$/m);
  assert.match(text, /^ +count +3 +flag +9 +9$/m);
  assert.match(text, /: 182s = idle 2s \+ interval 60s × count 3$/m);
});

Deno.test("formatKeepAliveReport() aligns its table columns", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({ interval: "32767s", count: "-1" }),
    kernel: KERNEL,
  });
  const lines = text.split("\n");
  const header = lines.find((l) => l.includes("setting"))!;
  const rows = lines.filter((l) => /^ +(idle|interval|count) /.test(l));
  assert.equal(rows.length, 3);
  for (const title of ["in force", "source", "Go default", "kernel default"]) {
    const col = header.indexOf(title);
    for (const row of rows) {
      assert.equal(row[col - 1], " ", `${title} column in ${JSON.stringify(row)}`);
      assert.notEqual(row[col], " ", `${title} column in ${JSON.stringify(row)}`);
    }
  }
});

Deno.test("formatKeepAliveReport() fills 'os' values from the kernel and counts them in the worst case", () => {
  const policy = keepAliveFromFlags({ count: "-1", idle: "10s" });
  const text = formatKeepAliveReport({ policy, kernel: { ...KERNEL, count: 4 } });
  assert.match(text, /^ +count +4 +os +9 +4$/m);
  assert.match(text, /: 70s = idle 10s \+ interval 15s × count 4/);
  const osIdle = formatKeepAliveReport({
    policy: keepAliveFromFlags({ idle: "-1s" }),
    kernel: KERNEL,
  });
  assert.match(osIdle, /^ +idle +7200s +os +15s +7200s$/m);
  assert.match(osIdle, /: 7335s = idle 7200s \+ interval 15s × count 9/);
});

Deno.test("formatKeepAliveReport() says the worst case is unknown without kernel values", () => {
  const policy = keepAliveFromFlags({ idle: "-1s" });
  const text = formatKeepAliveReport({ policy, kernel: null });
  assert.match(text, /^ +idle +kernel's +os +15s +\?$/m);
  assert.match(text, /worst case .*unknown/);
  assert.match(text, /kernel defaults: could not be read/);
});

Deno.test("formatKeepAliveReport() says a dead peer is never noticed when off", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({ noKeepalive: true }),
    kernel: KERNEL,
  });
  assert.match(text, /keepalive: off/);
  assert.match(text, /^ +idle +- +os +15s +7200s$/m);
  assert.match(text, /never/);
});

Deno.test("keepAliveReport() carries the same data as one JSON-able object, in seconds", () => {
  const report = keepAliveReport({
    policy: keepAliveFromFlags({ keepalive: "30s" }),
    kernel: KERNEL,
  });
  const round = JSON.parse(JSON.stringify(report));
  assert.deepEqual(round, report);
  assert.deepEqual(report, {
    enabled: true,
    idle_s: { value: 30, source: "flag", go_default: 15, kernel: 7200 },
    interval_s: { value: 15, source: "default", go_default: 15, kernel: 75 },
    count: { value: 9, source: "default", go_default: 9, kernel: 9 },
    worst_case_detection_s: 30 + 15 * 9,
    kernel_source: "/proc/sys/net/ipv4/tcp_keepalive_{time,intvl,probes}",
  });
});

Deno.test("keepAliveReport() has no values or worst case when off or unknown", () => {
  const off = keepAliveReport({
    policy: keepAliveFromFlags({ noKeepalive: true }),
    kernel: KERNEL,
  });
  assert.equal(off.enabled, false);
  assert.deepEqual([off.idle_s.value, off.interval_s.value, off.count.value], [null, null, null]);
  assert.equal(off.worst_case_detection_s, null);
  const unknown = keepAliveReport({ policy: keepAliveFromFlags({ count: "-1" }), kernel: null });
  assert.deepEqual(unknown.count, { value: null, source: "os", go_default: 9, kernel: null });
  assert.equal(unknown.worst_case_detection_s, null);
});

// ---------------------------------------------------------------------------
// --print-keepalive with the heartbeat weighed in

Deno.test("formatKeepAliveReport() with the server's heartbeat (54s/60s): the pong timeout notices first, keepalive alone is shown too", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({}),
    kernel: KERNEL,
    heartbeat: { pingInterval: 54_000, pongTimeout: 60_000 },
  });
  assert.match(
    text,
    /^worst case to notice a dead idle peer: 60s, by the heartbeat \(nothing received for --pong-timeout 60s\); TCP keepalive alone: 150s = idle 15s \+ interval 15s × count 9$/m,
  );
  assert.match(
    text,
    /^worst case to notice a hung peer \(its kernel still answers TCP\): 60s, by the heartbeat \(a ping every 54s\)$/m,
  );
});

Deno.test("formatKeepAliveReport() keeps keepalive's figure when it comes before the pong timeout", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({ idle: "1s", interval: "1s", count: "3" }),
    kernel: KERNEL,
    heartbeat: { pingInterval: 54_000, pongTimeout: 60_000 },
  });
  assert.match(
    text,
    /^worst case to notice a dead idle peer: 4s = idle 1s \+ interval 1s × count 3 \(before the heartbeat's 60s\)$/m,
  );
});

Deno.test("formatKeepAliveReport() with the heartbeat off (the client's default) says only a heartbeat notices a hung peer", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({}),
    kernel: KERNEL,
    heartbeat: { pingInterval: 0, pongTimeout: 0 },
  });
  assert.match(text, /^worst case to notice a dead idle peer: 150s = idle 15s/m);
  assert.match(text, /^worst case to notice a hung peer .*: never \(only the heartbeat notices/m);
  const off = formatKeepAliveReport({
    policy: keepAliveFromFlags({ noKeepalive: true }),
    kernel: KERNEL,
    heartbeat: { pingInterval: 20_000, pongTimeout: 25_000 },
  });
  assert.match(off, /dead idle peer: 25s, by the heartbeat .*; TCP keepalive is off$/m);
});

Deno.test("keepAliveReport() with a heartbeat adds it, the worst case by either, and the hung-peer case, in seconds", () => {
  const report = keepAliveReport({
    policy: keepAliveFromFlags({ keepalive: "30s" }),
    kernel: KERNEL,
    heartbeat: { pingInterval: 54_000, pongTimeout: 60_000 },
  });
  assert.deepEqual(report.heartbeat, { ping_interval_s: 54, pong_timeout_s: 60 });
  assert.equal(report.worst_case_detection_s, 165, "keepalive's own figure is unchanged");
  assert.equal(report.worst_case_notice_s, 60);
  assert.equal(report.worst_case_hung_peer_s, 60);
  const noHeartbeat = keepAliveReport({
    policy: keepAliveFromFlags({}),
    kernel: KERNEL,
    heartbeat: { pingInterval: 0, pongTimeout: 0 },
  });
  assert.deepEqual(
    [noHeartbeat.worst_case_notice_s, noHeartbeat.worst_case_hung_peer_s],
    [150, null],
  );
});

Deno.test("resolveKeepAlive() returns a policy resolved already as it is, so serve() and dial() take either", () => {
  const policy = resolveKeepAlive({ idle: 30_000 });
  assert.equal(resolveKeepAlive(policy), policy);
  assert.deepEqual(resolveKeepAlive(policy), {
    enabled: true,
    idle: 30_000,
    interval: 15_000,
    count: 9,
    sources: { idle: "given", interval: "default", count: "default" },
  });
  const off = resolveKeepAlive(false);
  assert.equal(resolveKeepAlive(off).enabled, false);
});
