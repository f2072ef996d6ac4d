/**
 * The handshake deadline of a server: every connection still sending its
 * request head has one, and one shared timer ends the late ones. A
 * connection costs a map entry, not a timer of its own: under a reconnect
 * storm thousands of heads are in flight at once.
 *
 * @module
 */

import { closeConn } from "../tcp/sockopt.ts";

/** How often the shared timer looks for late heads: a tenth of the timeout, within 10 ms and 1 s. */
function tickFor(timeout: number): number {
  return Math.max(10, Math.min(1_000, timeout / 10));
}

/** The connections reading their request head, each with its deadline, and the one timer over them. */
export class HandshakeDeadlines {
  /** The bound on reading a request head (ms). */
  readonly timeout: number;
  // Deadlines come in insertion order, as every one is now + the same timeout.
  #pending = new Map<Deno.Conn, number>();
  #late = new WeakSet<Deno.Conn>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #tick: number;
  #onTick = () => this.#endLate();

  /** Deadlines `timeout` ms after each {@linkcode HandshakeDeadlines.start}. */
  constructor(timeout: number) {
    this.timeout = timeout;
    this.#tick = tickFor(timeout);
  }

  /** Starts `conn`'s deadline, and the timer if it was stopped. */
  start(conn: Deno.Conn): void {
    this.#pending.set(conn, Date.now() + this.timeout);
    this.#timer ??= setInterval(this.#onTick, this.#tick);
  }

  /** Ends `conn`'s deadline: its head is in, or it is gone. */
  end(conn: Deno.Conn): void {
    this.#pending.delete(conn);
  }

  /** Whether the deadline closed `conn`. */
  timedOut(conn: Deno.Conn): boolean {
    return this.#late.has(conn);
  }

  /** Closes every connection still reading its head (shutdown), and stops the timer. */
  closeAll(): void {
    for (const conn of this.#pending.keys()) closeConn(conn);
    this.#pending.clear();
    this.#stop();
  }

  /** Closes the connections past their deadline: their pending read fails, and the server reports the timeout. */
  #endLate(): void {
    const now = Date.now();
    for (const [conn, deadline] of this.#pending) {
      if (deadline > now) break;
      this.#pending.delete(conn);
      this.#late.add(conn);
      closeConn(conn);
    }
    if (this.#pending.size === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
