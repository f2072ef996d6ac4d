import assert from "node:assert/strict";
import { joinHeartbeat } from "../lib/ws/heartbeat.ts";

function member(lastReceived: () => number) {
  const seen = { pings: 0, timeouts: [] as number[] };
  return {
    seen,
    m: {
      get lastReceived() {
        return lastReceived();
      },
      heartbeatPing: () => void seen.pings++,
      heartbeatTimeout: (quiet: number) => void seen.timeouts.push(quiet),
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("joinHeartbeat() pings a member that hears from its peer, and never times it out", async () => {
  const { m, seen } = member(() => Date.now());
  const leave = joinHeartbeat(m, 100, 250);
  try {
    await sleep(560);
  } finally {
    leave();
  }
  assert.ok(seen.pings >= 3 && seen.pings <= 6, `pings: ${seen.pings}`);
  assert.deepEqual(seen.timeouts, []);
});

Deno.test("joinHeartbeat() times out a quiet member once, at the pong timeout, and drops it", async () => {
  const since = Date.now();
  const { m, seen } = member(() => since);
  const leave = joinHeartbeat(m, 0, 200);
  try {
    await sleep(500);
  } finally {
    leave();
  }
  assert.equal(seen.timeouts.length, 1);
  assert.ok(seen.timeouts[0] >= 200 && seen.timeouts[0] < 450, `quiet ${seen.timeouts[0]}`);
  assert.equal(seen.pings, 0);
});

Deno.test("joinHeartbeat() stops calling a member that left, and schedules nothing with both periods 0", async () => {
  const a = member(() => Date.now());
  const leave = joinHeartbeat(a.m, 50, 0);
  leave();
  const b = member(() => 0);
  joinHeartbeat(b.m, 0, 0)();
  await sleep(200);
  assert.equal(a.seen.pings, 0);
  assert.deepEqual(b.seen.timeouts, []);
});

Deno.test("joinHeartbeat() serves several members with one period pair independently", async () => {
  const quietSince = Date.now();
  const alive = member(() => Date.now());
  const quiet = member(() => quietSince);
  const leaveA = joinHeartbeat(alive.m, 100, 300);
  const leaveB = joinHeartbeat(quiet.m, 100, 300);
  try {
    await sleep(650);
  } finally {
    leaveA();
    leaveB();
  }
  assert.deepEqual(alive.seen.timeouts, []);
  assert.equal(quiet.seen.timeouts.length, 1);
  assert.ok(alive.seen.pings > quiet.seen.pings, `${alive.seen.pings} vs ${quiet.seen.pings}`);
});
