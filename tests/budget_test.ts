/**
 * The server-wide memory budget on its own: members are plain objects that
 * report what they hold, no connection and no socket.
 */

import assert from "node:assert/strict";
import { type BudgetMember, EVICTION_FLOOR, MemoryBudget } from "../lib/ws/budget.ts";

const KiB = 1024;

/** A member that frees all but `pinned` bytes when evicted. */
function member(pinned = 0): BudgetMember & { evicted: number } {
  return {
    owner: null,
    charged: 0,
    evicted: 0,
    evict() {
      this.evicted++;
      return pinned;
    },
  };
}

Deno.test("MemoryBudget evicts the biggest holders, one by one, until the total fits", () => {
  const budget = new MemoryBudget(1000 * KiB);
  const [a, b, c, small] = [member(), member(), member(), member()];
  for (const x of [a, b, c, small]) budget.join(x);
  budget.update(small, 10 * KiB);
  budget.update(a, 300 * KiB);
  budget.update(b, 400 * KiB);
  budget.update(c, 500 * KiB); // 1,210 KiB: c, the biggest, goes
  assert.deepEqual([a.evicted, b.evicted, c.evicted, small.evicted], [0, 0, 1, 0]);
  assert.equal(budget.used, 710 * KiB);
  assert.equal(budget.evictions, 1);
});

Deno.test("MemoryBudget never evicts a member below the floor, even over the limit", () => {
  const budget = new MemoryBudget(100 * KiB);
  const members = Array.from({ length: 4 }, () => member());
  for (const x of members) {
    budget.join(x);
    budget.update(x, EVICTION_FLOOR - 1);
  }
  assert.ok(budget.used > budget.limit);
  assert.equal(budget.evictions, 0);
});

Deno.test("MemoryBudget keeps charging what an evicted member still holds, and evicts the next one instead", () => {
  const budget = new MemoryBudget(1000 * KiB);
  const pinned = member(600 * KiB); // its memory stays alive a while (a read in flight)
  const next = member();
  const small = member();
  for (const x of [pinned, next, small]) budget.join(x);
  budget.update(small, 10 * KiB);
  budget.update(next, 400 * KiB);
  budget.update(pinned, 700 * KiB); // 1,110 KiB: pinned goes but still holds 600
  assert.equal(pinned.evicted, 1);
  assert.equal(next.evicted, 1, "the next biggest went too: 1,010 KiB did not fit");
  assert.equal(small.evicted, 0);
  assert.equal(budget.used, 610 * KiB);
  // More growth never picks the evicted member again.
  budget.update(small, 500 * KiB);
  assert.equal(pinned.evicted, 1);
  assert.equal(small.evicted, 1);
  // The pinned memory is freed: it reports so, then leaves.
  budget.update(pinned, 0);
  budget.leave(pinned);
  assert.equal(budget.size, 2);
});

Deno.test("MemoryBudget hands onEvict the evicted member's owner and its charge", () => {
  const budget = new MemoryBudget<string>(100 * KiB);
  const seen: [string, number][] = [];
  budget.onEvict = (owner, e) => seen.push([owner, e.held]);
  const a = { ...member(), owner: "connection a" };
  budget.join(a);
  budget.update(a, 200 * KiB);
  assert.deepEqual(seen, [["connection a", 200 * KiB]]);
  assert.equal(a.evicted, 1);
});

Deno.test("MemoryBudget refuses a limit that is not a positive whole number", () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => new MemoryBudget(bad), RangeError);
  }
});
