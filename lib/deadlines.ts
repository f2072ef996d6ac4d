/**
 * Many deadlines, one timer: members are kept in 10 ms slots by when they
 * are due, and a single `setTimeout` waits for the earliest slot. Setting
 * or clearing a deadline is two map operations; a `setTimeout` and its
 * `clearTimeout` cost about 3 µs in Deno, paid per connection when every
 * closing handshake has its own timer (a reconnect storm closes thousands a
 * second). A deadline fires up to one slot late, never early.
 *
 * @module
 */

/** Something with a deadline: told once when it is due. */
export interface Expiring {
  /** The deadline has passed; it is cleared already. */
  expired(): void;
}

/** Deadlines of many members over one timer; see the module doc. */
export class Deadlines {
  /** The slot width in ms: a deadline fires at most this late. */
  readonly slotMs: number;
  #slots = new Map<number, Set<Expiring>>();
  #due = new Map<Expiring, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #onTimer = () => this.#fire();

  /** @param slotMs the slot width in ms (default 10) */
  constructor(slotMs = 10) {
    this.slotMs = slotMs;
  }

  /** How many deadlines are set. */
  get size(): number {
    return this.#due.size;
  }

  /** Sets `member`'s deadline `ms` from now, replacing the one it had. */
  set(member: Expiring, ms: number): void {
    this.clear(member);
    const at = Math.ceil((Date.now() + Math.max(0, ms)) / this.slotMs) * this.slotMs;
    let slot = this.#slots.get(at);
    if (slot === undefined) this.#slots.set(at, slot = new Set());
    slot.add(member);
    this.#due.set(member, at);
    if (at < this.#timerAt) this.#arm(at);
  }

  /** Clears `member`'s deadline, if it has one. */
  clear(member: Expiring): void {
    const at = this.#due.get(member);
    if (at === undefined) return;
    this.#due.delete(member);
    const slot = this.#slots.get(at)!;
    slot.delete(member);
    if (slot.size === 0) this.#slots.delete(at);
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, at - Date.now()));
  }

  /** Tells every member whose slot has passed, then waits for the next slot. */
  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    for (const [at, slot] of this.#slots) {
      if (at > now) continue;
      this.#slots.delete(at);
      for (const member of slot) {
        this.#due.delete(member);
        member.expired();
      }
    }
    let next = Infinity;
    for (const at of this.#slots.keys()) if (at < next) next = at;
    if (next !== Infinity) this.#arm(next);
  }
}
