import assert from "node:assert/strict";
import { UsageError } from "../lib/ws/errors.ts";
import {
  DEFAULT_KEEPALIVE_COUNT,
  DEFAULT_KEEPALIVE_IDLE_S,
  DEFAULT_KEEPALIVE_INTERVAL_S,
  formatKeepAliveReport,
  fromKeepAliveConfig,
  fromSingleValue,
  keepAliveFromFlags,
  type KeepAlivePolicy,
  keepAliveReport,
  worstCaseDetectionSeconds,
} from "../lib/tcp/keepalive.ts";

/** The values of a policy as a tuple, for short assertions. */
function values(p: KeepAlivePolicy) {
  return [p.enabled, p.idle_s, p.interval_s, p.count];
}

Deno.test("Go's default constants are 15 s / 15 s / 9", () => {
  assert.deepEqual(
    [
      DEFAULT_KEEPALIVE_IDLE_S,
      DEFAULT_KEEPALIVE_INTERVAL_S,
      DEFAULT_KEEPALIVE_COUNT,
    ],
    [15, 15, 9],
  );
});

Deno.test("fromKeepAliveConfig() gives zero or absent fields Go's defaults", () => {
  for (
    const cfg of [{ enable: true }, {
      enable: true,
      idleMs: 0,
      intervalMs: 0,
      count: 0,
    }]
  ) {
    const p = fromKeepAliveConfig(cfg);
    assert.deepEqual(values(p), [true, 15, 15, 9]);
    assert.deepEqual(p.sources, {
      idle: "default",
      interval: "default",
      count: "default",
    });
  }
});

Deno.test("fromKeepAliveConfig() leaves negative fields to the OS", () => {
  const p = fromKeepAliveConfig({
    enable: true,
    idleMs: -1,
    intervalMs: 20_000,
    count: -5,
  });
  assert.deepEqual(values(p), [true, null, 20, null]);
  assert.deepEqual(p.sources, { idle: "os", interval: "flag", count: "os" });
});

Deno.test("fromKeepAliveConfig() rounds durations up to whole seconds", () => {
  assert.equal(fromKeepAliveConfig({ enable: true, idleMs: 1 }).idle_s, 1);
  assert.equal(
    fromKeepAliveConfig({ enable: true, idleMs: 0.000001 }).idle_s,
    1,
  );
  assert.equal(fromKeepAliveConfig({ enable: true, idleMs: 1_500 }).idle_s, 2);
  assert.equal(
    fromKeepAliveConfig({ enable: true, intervalMs: 15_000 }).interval_s,
    15,
  );
  assert.equal(
    fromKeepAliveConfig({ enable: true, intervalMs: 15_001 }).interval_s,
    16,
  );
});

Deno.test("fromKeepAliveConfig() keeps Enable=false as SO_KEEPALIVE off", () => {
  assert.equal(fromKeepAliveConfig({ enable: false }).enabled, false);
});

Deno.test("fromKeepAliveConfig() accepts Linux's limits and rejects one past them", () => {
  const top = fromKeepAliveConfig({
    enable: true,
    idleMs: 32_767_000,
    intervalMs: 32_767_000,
    count: 127,
  });
  assert.deepEqual(values(top), [true, 32767, 32767, 127]);
  const bottom = fromKeepAliveConfig({
    enable: true,
    idleMs: 1,
    intervalMs: 1,
    count: 1,
  });
  assert.deepEqual(values(bottom), [true, 1, 1, 1]);
  assert.throws(
    () => fromKeepAliveConfig({ enable: true, idleMs: 32_767_001 }),
    /KeepAliveConfig\.Idle .* is out of range: Linux allows 1s to 32767s/,
  );
  assert.throws(
    () => fromKeepAliveConfig({ enable: true, intervalMs: 32_768_000 }),
    /KeepAliveConfig\.Interval .* out of range/,
  );
  assert.throws(
    () => fromKeepAliveConfig({ enable: true, count: 128 }),
    /KeepAliveConfig\.Count 128 is out of range: Linux allows 1 to 127/,
  );
  assert.throws(
    () => fromKeepAliveConfig({ enable: true, count: 2.5 }),
    UsageError,
  );
});

Deno.test("fromSingleValue() follows Go's Dialer.KeepAlive", async (t) => {
  await t.step("0 → on with 15/15/9", () => {
    const p = fromSingleValue(0);
    assert.deepEqual(values(p), [true, 15, 15, 9]);
    assert.equal(p.sources.idle, "default");
  });
  await t.step("negative → off", () => {
    assert.equal(fromSingleValue(-1).enabled, false);
    assert.equal(fromSingleValue(-60_000).enabled, false);
  });
  await t.step("positive → idle only: 30s gives 30/15/9", () => {
    const p = fromSingleValue(30_000);
    assert.deepEqual(values(p), [true, 30, 15, 9]);
    assert.deepEqual(p.sources, {
      idle: "flag",
      interval: "default",
      count: "default",
    });
  });
  await t.step("positive rounds up", () => {
    assert.equal(fromSingleValue(1).idle_s, 1);
    assert.equal(fromSingleValue(2_001).idle_s, 3);
  });
  await t.step("past Linux's limit is a UsageError", () => {
    assert.throws(() => fromSingleValue(40_000_000), UsageError);
  });
});

Deno.test("keepAliveFromFlags() with no flags gives Go's defaults", () => {
  const p = keepAliveFromFlags({});
  assert.deepEqual(values(p), [true, 15, 15, 9]);
  assert.deepEqual(p.sources, {
    idle: "default",
    interval: "default",
    count: "default",
  });
});

Deno.test("keepAliveFromFlags() treats --keepalive as Go's single value", () => {
  assert.deepEqual(values(keepAliveFromFlags({ keepalive: "30s" })), [
    true,
    30,
    15,
    9,
  ]);
  assert.deepEqual(values(keepAliveFromFlags({ keepalive: "0" })), [
    true,
    15,
    15,
    9,
  ]);
  assert.equal(keepAliveFromFlags({ keepalive: "-1s" }).enabled, false);
});

Deno.test("keepAliveFromFlags() builds a KeepAliveConfig from the per-field flags", () => {
  const p = keepAliveFromFlags({ idle: "5s", interval: "2s", count: "3" });
  assert.deepEqual(values(p), [true, 5, 2, 3]);
  assert.deepEqual(p.sources, {
    idle: "flag",
    interval: "flag",
    count: "flag",
  });
  const partial = keepAliveFromFlags({ interval: "1m" });
  assert.deepEqual(values(partial), [true, 15, 60, 9]);
  assert.deepEqual(partial.sources, {
    idle: "default",
    interval: "flag",
    count: "default",
  });
});

Deno.test("keepAliveFromFlags() leaves the count to the kernel when negative, default when 0", () => {
  const os = keepAliveFromFlags({ count: "-1" });
  assert.equal(os.count, null);
  assert.equal(os.sources.count, "os");
  const zero = keepAliveFromFlags({ count: "0" });
  assert.equal(zero.count, 9);
  assert.equal(zero.sources.count, "default");
  assert.equal(keepAliveFromFlags({ idle: "-1s" }).idle_s, null);
});

Deno.test("keepAliveFromFlags() --no-keepalive turns keepalive off", () => {
  assert.equal(keepAliveFromFlags({ noKeepalive: true }).enabled, false);
});

Deno.test("keepAliveFromFlags() refuses --keepalive mixed with per-field flags", () => {
  assert.throws(
    () => keepAliveFromFlags({ keepalive: "30s", idle: "10s" }),
    (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(
        err.message,
        /--keepalive cannot be combined with --keepalive-idle/,
      );
      assert.match(err.message, /ignore/);
      return true;
    },
  );
  assert.throws(
    () => keepAliveFromFlags({ keepalive: "30s", count: "3" }),
    /--keepalive-count/,
  );
});

Deno.test("keepAliveFromFlags() refuses --no-keepalive with any tuning flag", () => {
  for (
    const f of [
      { keepalive: "30s" },
      { idle: "1s" },
      { interval: "1s" },
      { count: "3" },
    ]
  ) {
    assert.throws(
      () => keepAliveFromFlags({ noKeepalive: true, ...f }),
      /--no-keepalive cannot be combined with .*nothing to tune/,
    );
  }
});

Deno.test("keepAliveFromFlags() names the flag in duration and range errors", () => {
  assert.throws(
    () => keepAliveFromFlags({ idle: "15" }),
    {
      name: "UsageError",
      message: '--keepalive-idle: invalid duration "15": missing unit (did you mean 15s?)',
    },
  );
  assert.throws(
    () => keepAliveFromFlags({ keepalive: "soon" }),
    /^UsageError: --keepalive: /,
  );
  assert.throws(
    () => keepAliveFromFlags({ idle: "40000s" }),
    {
      message: "--keepalive-idle 40000s is out of range: Linux allows 1s to 32767s",
    },
  );
  assert.throws(
    () => keepAliveFromFlags({ interval: "10h" }),
    /--keepalive-interval 10h is out of range/,
  );
  assert.throws(
    () => keepAliveFromFlags({ count: "500" }),
    { message: "--keepalive-count 500 is out of range: Linux allows 1 to 127" },
  );
  assert.throws(
    () => keepAliveFromFlags({ count: "3.5" }),
    /--keepalive-count: "3.5" is not a whole number/,
  );
  assert.throws(() => keepAliveFromFlags({ count: "nine" }), UsageError);
});

Deno.test("worstCaseDetectionSeconds() is idle + interval × count", () => {
  assert.equal(worstCaseDetectionSeconds(15, 15, 9), 150);
  assert.equal(worstCaseDetectionSeconds(7200, 75, 9), 7875);
  assert.equal(worstCaseDetectionSeconds(1, 1, 3), 4);
});

const KERNEL = { idle_s: 7200, interval_s: 75, count: 9 };

Deno.test("formatKeepAliveReport() shows sources, kernel values and the 150 s worst case", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({}),
    kernel: KERNEL,
  });
  assert.match(text, /keepalive: on/);
  assert.match(text, /^ +idle +15s +default +15s +7200s$/m);
  assert.match(text, /^ +interval +15s +default +15s +75s$/m);
  assert.match(text, /^ +count +9 +default +9 +9$/m);
  assert.match(text, /worst case to notice a dead idle peer: 150s/);
  assert.match(text, /tcp_keepalive_\{time,intvl,probes\}/);
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
      assert.equal(
        row[col - 1],
        " ",
        `${title} column in ${JSON.stringify(row)}`,
      );
      assert.notEqual(
        row[col],
        " ",
        `${title} column in ${JSON.stringify(row)}`,
      );
    }
  }
});

Deno.test("formatKeepAliveReport() fills 'os' values from the kernel and counts them in the worst case", () => {
  const policy = keepAliveFromFlags({ count: "-1", idle: "10s" });
  const text = formatKeepAliveReport({
    policy,
    kernel: { ...KERNEL, count: 4 },
  });
  assert.match(text, /^ +count +4 +os +9 +4$/m);
  assert.match(text, /: 70s = idle 10s \+ interval 15s × count 4/);
});

Deno.test("formatKeepAliveReport() says the worst case is unknown without kernel values", () => {
  const policy = keepAliveFromFlags({ idle: "-1s" });
  const text = formatKeepAliveReport({ policy, kernel: null });
  assert.match(text, /worst case .*unknown/);
  assert.match(text, /could not be read/);
});

Deno.test("formatKeepAliveReport() says a dead peer is never noticed when off", () => {
  const text = formatKeepAliveReport({
    policy: keepAliveFromFlags({ noKeepalive: true }),
    kernel: KERNEL,
  });
  assert.match(text, /keepalive: off/);
  assert.match(text, /never/);
});

Deno.test("keepAliveReport() carries the same data as one JSON-able object", () => {
  const report = keepAliveReport({
    policy: keepAliveFromFlags({ keepalive: "30s" }),
    kernel: KERNEL,
  });
  const round = JSON.parse(JSON.stringify(report));
  assert.deepEqual(round, report);
  assert.equal(report.enabled, true);
  assert.deepEqual(report.idle_s, {
    value: 30,
    source: "flag",
    go_default: 15,
    kernel: 7200,
  });
  assert.deepEqual(report.interval_s, {
    value: 15,
    source: "default",
    go_default: 15,
    kernel: 75,
  });
  assert.deepEqual(report.count, {
    value: 9,
    source: "default",
    go_default: 9,
    kernel: 9,
  });
  assert.equal(report.worst_case_detection_s, 30 + 15 * 9);
});
