import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../app/common/duration.ts";
import { UsageError } from "../app/common/errors.ts";

Deno.test("parseDuration() reads Go's units and sequences", async (t) => {
  const cases: [string, number][] = [
    ["300ms", 300],
    ["15s", 15_000],
    ["1m30s", 90_000],
    ["2h45m", 9_900_000],
    ["1.5s", 1_500],
    [".5s", 500],
    ["1.s", 1_000],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["1500μs", 1.5],
    ["250000ns", 0.25],
    ["1h1m1s1ms", 3_661_001],
  ];
  for (const [text, ms] of cases) {
    await t.step(`${text} → ${ms} ms`, () => {
      assert.equal(parseDuration(text), ms);
    });
  }
});

Deno.test("parseDuration() keeps the sign of -1s and +2s", () => {
  assert.equal(parseDuration("-1s"), -1_000);
  assert.equal(parseDuration("+2s"), 2_000);
  assert.equal(parseDuration("-1m30s"), -90_000);
});

Deno.test("parseDuration() accepts a bare 0 without a unit", () => {
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("-0"), 0);
  assert.equal(parseDuration("0s"), 0);
});

Deno.test("parseDuration() hints at the unit when a bare number is given", () => {
  assert.throws(() => parseDuration("15"), {
    name: "UsageError",
    message: 'invalid duration "15": missing unit (did you mean 15s?)',
  });
  assert.throws(() => parseDuration("1.5"), /did you mean 1\.5s\?/);
});

Deno.test("parseDuration() rejects malformed text with a UsageError", async (t) => {
  for (const text of ["", "-", "s", ".s", "1x", "1s2", "1 s", "abc", "1s-2s"]) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseDuration(text), (err: unknown) => {
        assert.ok(err instanceof UsageError);
        assert.ok(err.message.includes(JSON.stringify(text)), err.message);
        return true;
      });
    });
  }
});

Deno.test("parseDuration() names the unknown unit", () => {
  assert.throws(() => parseDuration("5d"), /unknown unit "d"/);
});

Deno.test("formatDuration() prints like Go's Duration.String", async (t) => {
  const cases: [number, string][] = [
    [0, "0s"],
    [500, "500ms"],
    [15_000, "15s"],
    [90_000, "1m30s"],
    [1_500, "1.5s"],
    [3_600_000, "1h0m0s"],
    [3_661_001, "1h1m1.001s"],
    [1.5, "1.5ms"],
    [0.0015, "1.5µs"],
    [0.0005, "500ns"],
    [-1_000, "-1s"],
  ];
  for (const [ms, text] of cases) {
    await t.step(`${ms} ms → ${text}`, () => {
      assert.equal(formatDuration(ms), text);
    });
  }
});

Deno.test("formatDuration() output parses back to the same value", () => {
  for (const ms of [1, 999, 1_001, 59_999, 61_000, 7_200_000, 0.001]) {
    assert.equal(parseDuration(formatDuration(ms)), ms);
  }
});
