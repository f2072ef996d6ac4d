/**
 * A memory budget shared by many connections (a server's): every member
 * reports the bytes it holds (read buffers, partial messages, messages
 * waiting for the application, send queues), and when the total passes the
 * limit the members holding the most are evicted, one by one, until it fits
 * again. Small, well-behaved connections hold little and are never chosen
 * while a big holder exists.
 *
 * No I/O and no clock: eviction is a call to the member, which frees what
 * it can at once (a connection fails with 1013 Try Again Later) and reports
 * what it still holds: a buffer a read in flight writes into is freed only
 * when that read completes, so it stays charged until then, and the budget
 * evicts others rather than count memory that is not free yet.
 *
 * @module
 */

/** A member holding less than this is never evicted: it is not the problem. */
export const EVICTION_FLOOR = 64 * 1024;

/**
 * What the budget needs of a member. `owner` is whom the member acts for
 * (a connection's member is a private part of it; the owner is the
 * connection itself): {@linkcode MemoryBudget.onEvict} is handed the owner.
 */
export interface BudgetMember<Owner = unknown> {
  /** Whom this member acts for, as handed to {@linkcode MemoryBudget.onEvict}. */
  readonly owner: Owner;
  /** Bytes charged to the budget for this member; kept by the budget. */
  charged: number;
  /**
   * Frees what the member holds, now: it is being closed for the budget's
   * sake. Returns the bytes it still holds (memory a read in flight keeps
   * alive); it reports them falling with {@linkcode MemoryBudget.update}.
   */
  evict(): number;
}

/** One eviction, as reported to {@linkcode MemoryBudget.onEvict}. */
export interface Eviction {
  /** The member's charge when it was chosen. */
  held: number;
  /** The budget's total at that moment, the member's charge included. */
  used: number;
  /** The limit. */
  limit: number;
}

/** A limit on the bytes held by a group of members, each acting for an `Owner`. */
export class MemoryBudget<Owner = unknown> {
  /** The most bytes the members may hold together. */
  readonly limit: number;
  /** Members evicted so far. */
  evictions = 0;
  /** Called for each eviction with the member's owner, before the member's `evict()`. */
  onEvict: ((owner: Owner, eviction: Eviction) => void) | null = null;

  #used = 0;
  #members = new Set<BudgetMember<Owner>>();
  /** Members already evicted that still hold something; never chosen again. */
  #evicted = new Set<BudgetMember<Owner>>();

  /**
   * A budget of `limit` bytes; throws a RangeError unless it is a positive whole number.
   *
   * @param limit the most bytes the members may hold together
   */
  constructor(limit: number) {
    if (!(Number.isSafeInteger(limit) && limit > 0)) {
      throw new RangeError(`a memory budget must be a positive number of bytes, not ${limit}`);
    }
    this.limit = limit;
  }

  /** Bytes held by all members, as last reported. */
  get used(): number {
    return this.#used;
  }

  /** Members now. */
  get size(): number {
    return this.#members.size;
  }

  /** Adds a member, charging nothing yet. */
  join(member: BudgetMember<Owner>): void {
    member.charged = 0;
    this.#members.add(member);
  }

  /** Removes a member and its charge. */
  leave(member: BudgetMember<Owner>): void {
    if (!this.#members.delete(member)) return;
    this.#evicted.delete(member);
    this.#used -= member.charged;
    member.charged = 0;
  }

  /**
   * Sets what `member` holds now. Growth past the limit evicts the biggest
   * holders (possibly `member` itself) until the total fits.
   */
  update(member: BudgetMember<Owner>, held: number): void {
    const delta = held - member.charged;
    if (delta === 0 || !this.#members.has(member)) return;
    member.charged = held;
    this.#used += delta;
    if (delta > 0 && this.#used > this.limit) this.#relieve();
  }

  #relieve(): void {
    while (this.#used > this.limit) {
      let top: BudgetMember<Owner> | null = null;
      for (const m of this.#members) {
        if (!this.#evicted.has(m) && (top === null || m.charged > top.charged)) top = m;
      }
      if (top === null || top.charged < EVICTION_FLOOR) return;
      const eviction = { held: top.charged, used: this.#used, limit: this.limit };
      this.#evicted.add(top);
      this.evictions++;
      this.onEvict?.(top.owner, eviction);
      const still = top.evict();
      if (this.#members.has(top)) this.update(top, still);
    }
  }
}
