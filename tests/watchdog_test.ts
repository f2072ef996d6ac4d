/**
 * The shared watchdog: pings, pong timeouts and write stalls, checked tick by
 * tick with an injected clock (no wall-clock windows), plus one run of the
 * process-wide timer.
 */

import assert from "node:assert/strict";
import { joinWatchdog, Watchdog, type WatchdogMember } from "../lib/ws/watchdog.ts";

/** A member whose times the test sets, recording what the watchdog tells it. */
function member(init: { lastReceived?: number; writingSince?: number } = {}) {
  const seen = { pings: [] as number[], timeouts: [] as number[], stalls: [] as number[] };
  let now = 0;
  const m = {
    lastReceived: init.lastReceived ?? 0,
    writingSince: init.writingSince ?? 0,
    pingDue: () => void seen.pings.push(now),
    timedOut: (quiet: number) => void seen.timeouts.push(quiet),
    stalled: (ms: number) => void seen.stalls.push(ms),
  } satisfies WatchdogMember;
  return { m, seen, at: (t: number) => now = t };
}

/** Ticks `dog` every `step` ms from `from` to `to`, telling members the time. */
function run(dog: Watchdog, members: { at(t: number): void }[], from: number, to: number) {
  for (let t = from; t <= to; t += dog.tickMs) {
    for (const x of members) x.at(t);
    dog.tick(t);
  }
}

Deno.test("Watchdog pings a member that hears from its peer every ping interval, and never times it out", () => {
  const dog = new Watchdog({ pingInterval: 100, pongTimeout: 250, stallTimeout: 0 });
  const a = member();
  dog.add(a.m, 0);
  for (let t = 0; t <= 1_000; t += dog.tickMs) {
    a.m.lastReceived = t; // the peer answers at once
    a.at(t);
    dog.tick(t);
  }
  assert.equal(dog.tickMs, 10);
  assert.deepEqual(a.seen.pings, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  assert.deepEqual(a.seen.timeouts, []);
});

Deno.test("Watchdog times out a quiet member once, at the pong timeout, and drops it", () => {
  const dog = new Watchdog({ pingInterval: 0, pongTimeout: 200, stallTimeout: 0 });
  const a = member({ lastReceived: 0 });
  dog.add(a.m, 0);
  run(dog, [a], 0, 1_000);
  assert.deepEqual(a.seen.timeouts, [200]);
  assert.deepEqual(a.seen.pings, []);
  assert.equal(dog.members.size, 0);
});

Deno.test("Watchdog fails a member whose write is pending past the stall timeout, before any other check", () => {
  const dog = new Watchdog({ pingInterval: 50, pongTimeout: 400, stallTimeout: 300 });
  const stuck = member({ lastReceived: 0, writingSince: 100 });
  const writing = member({ lastReceived: 0 });
  dog.add(stuck.m, 0);
  dog.add(writing.m, 0);
  for (let t = 0; t <= 1_000; t += dog.tickMs) {
    // The second member's writes complete every 100 ms: progress, never a stall.
    writing.m.writingSince = t - (t % 100);
    stuck.m.lastReceived = writing.m.lastReceived = t;
    stuck.at(t);
    writing.at(t);
    dog.tick(t);
  }
  assert.deepEqual(stuck.seen.stalls, [300]);
  assert.deepEqual(stuck.seen.timeouts, []);
  assert.deepEqual(writing.seen.stalls, []);
  assert.ok(writing.seen.pings.length >= 19, `${writing.seen.pings.length} pings`);
});

Deno.test("Watchdog serves several members with one set of periods independently", () => {
  const dog = new Watchdog({ pingInterval: 100, pongTimeout: 300, stallTimeout: 0 });
  const alive = member();
  const quiet = member({ lastReceived: 0 });
  dog.add(alive.m, 0);
  dog.add(quiet.m, 0);
  for (let t = 0; t <= 650; t += dog.tickMs) {
    alive.m.lastReceived = t;
    alive.at(t);
    quiet.at(t);
    dog.tick(t);
  }
  assert.deepEqual(alive.seen.timeouts, []);
  assert.deepEqual(quiet.seen.timeouts, [300]);
  assert.deepEqual(quiet.seen.pings, [100, 200]);
  assert.equal(alive.seen.pings.length, 6);
});

Deno.test("Watchdog ticks at 1/20 of the shortest period, between 10 ms and 1 s; all periods 0 means no ticks", () => {
  const tick = (p: number, q: number, s: number) =>
    new Watchdog({ pingInterval: p, pongTimeout: q, stallTimeout: s }).tickMs;
  assert.equal(tick(54_000, 60_000, 30_000), 1_000);
  assert.equal(tick(1_000, 3_000, 30_000), 50);
  assert.equal(tick(50, 0, 0), 10);
  assert.equal(tick(0, 0, 0), 0);
});

Deno.test("joinWatchdog() runs the process-wide timer, stops calling a member that left, and schedules nothing with every period 0", async () => {
  let now = 0;
  const clock = () => now;
  const a = member({ lastReceived: 0 });
  const leave = joinWatchdog(
    a.m,
    { pingInterval: 0, pongTimeout: 200, stallTimeout: 0 },
    clock,
  );
  now = 500; // the next tick (every 10 ms) sees 500 ms of silence
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(a.seen.timeouts, [500]);
  leave();
  const b = member({ lastReceived: 0 });
  joinWatchdog(b.m, { pingInterval: 0, pongTimeout: 0, stallTimeout: 0 }, clock)();
  const c = member({ lastReceived: 0 });
  joinWatchdog(c.m, { pingInterval: 0, pongTimeout: 200, stallTimeout: 0 }, clock)();
  now = 10_000;
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(b.seen.timeouts, []);
  assert.deepEqual(c.seen.timeouts, []);
});
