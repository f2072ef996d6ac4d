import assert from "node:assert/strict";
import { Deadlines, type Expiring } from "../lib/deadlines.ts";

/** Waits until `done()` holds, up to 5 s (a loaded machine runs timers late, never early). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
}

function member(log: string[], name: string): Expiring & { at: number } {
  return {
    at: 0,
    expired() {
      this.at = performance.now();
      log.push(name);
    },
  };
}

Deno.test("Deadlines: each member once, in deadline order, never early; clear and set replace", async () => {
  const d = new Deadlines(10);
  const log: string[] = [];
  const start = performance.now();
  const a = member(log, "a"), b = member(log, "b"), c = member(log, "c"), e = member(log, "e");
  d.set(b, 60);
  d.set(a, 20);
  d.set(c, 40);
  d.set(e, 30);
  d.clear(e); // cleared: never told
  d.set(c, 100); // replaced: told once, at the later time
  assert.equal(d.size, 3);
  await until(() => log.length >= 3);
  await new Promise((r) => setTimeout(r, 50)); // nothing more comes
  assert.deepEqual(log, ["a", "b", "c"]);
  assert.ok(a.at - start >= 19, `a fired after ${a.at - start} ms`);
  assert.ok(b.at - start >= 59, `b fired after ${b.at - start} ms`);
  assert.ok(c.at - start >= 99, `c fired after ${c.at - start} ms`);
  assert.equal(d.size, 0);
});

Deno.test("Deadlines: a member may set its deadline again when told", async () => {
  const d = new Deadlines(10);
  let told = 0;
  const m: Expiring = {
    expired() {
      if (++told < 3) d.set(m, 10);
    },
  };
  d.set(m, 10);
  await until(() => told >= 3);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(told, 3);
  assert.equal(d.size, 0);
});
