/**
 * Log events as the programs write them (`--log-format json`, one per line),
 * captured as they arrive, with one way to wait for one. A subprocess
 * ({@linkcode ./process.ts}) and the in-process test server
 * ({@linkcode ./server.ts}) both keep theirs in an {@linkcode EventLog}.
 *
 * @module
 */

import { type Condition, DEFAULT_WAIT_MS, waitFor } from "./wait.ts";

/** One log event: `event`, `level` and the event's fields (README, "Logs"). */
export type LogEvent = Record<string, unknown> & { event: string; level: string };

/** Options of an {@linkcode EventLog}. */
export interface EventLogOptions {
  /** The default bound on a wait (ms). */
  timeoutMs?: number;
  /** Why no more events can come (e.g. the process ended), or undefined while they can. */
  hopeless?: () => string | undefined;
  /** What a failed wait shows; the events themselves by default. */
  context?: () => string;
}

/** Options of {@linkcode EventLog.waitForEvent}. */
export interface WaitForEventOptions {
  /** Wait for the `nth` (1-based) matching event; default 1. */
  nth?: number;
  /** Only events logged after the first `after` count (e.g. `log.events.length` before an action). */
  after?: number;
  /** The bound (ms); the log's default otherwise. */
  timeoutMs?: number;
}

/** Captured events, each with the time it arrived, and a way to wait for one. */
export class EventLog<E extends { event: string } = LogEvent> {
  /** Every event so far, in order. */
  readonly events: E[] = [];
  readonly #options: EventLogOptions;
  readonly #arrived = new WeakMap<E, number>();
  #waiting: (() => void)[] = [];

  /** An empty log; `options` set the default bound and what a failed wait shows. */
  constructor(options: EventLogOptions = {}) {
    this.#options = options;
  }

  /** Records one event, read at `at` (Date.now()), and wakes whoever waits. */
  push(e: E, at: number = Date.now()): void {
    this.events.push(e);
    this.#arrived.set(e, at);
    this.wake();
  }

  /** Wakes whoever waits, for a change other than an event (output, an exit). */
  wake(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const wake of waiting) wake();
  }

  /** When (Date.now()) `e` arrived. */
  arrivedAt(e: E): number {
    const at = this.#arrived.get(e);
    if (at === undefined) throw new Error(`not an event of this log: ${JSON.stringify(e)}`);
    return at;
  }

  /** Events named `event` that pass `where`. */
  all(event: string, where: (e: E) => boolean = () => true): E[] {
    return this.events.filter((e) => e.event === event && where(e));
  }

  /**
   * Waits until `condition` holds, re-checking it whenever an event (or
   * anything announced with {@linkcode wake}) arrives; see {@linkcode waitFor}.
   */
  until<T>(what: string, condition: Condition<T>, timeoutMs?: number): Promise<T> {
    return waitFor(condition, what, timeoutMs ?? this.#options.timeoutMs ?? DEFAULT_WAIT_MS, {
      changed: () => new Promise((resolve) => this.#waiting.push(resolve)),
      hopeless: this.#options.hopeless,
      context: this.#options.context ?? (() => this.summary()),
    });
  }

  /** Waits for the `nth` event named `event` that passes `where`, already logged or still to come. */
  waitForEvent(
    event: string,
    where: (e: E) => boolean = () => true,
    options: WaitForEventOptions = {},
  ): Promise<E> {
    const nth = options.nth ?? 1;
    const after = options.after ?? 0;
    const what = `event "${event}"${nth > 1 ? ` #${nth}` : ""}${after ? ` after #${after}` : ""}`;
    return this.until(what, () => {
      const hits = this.events.slice(after).filter((e) => e.event === event && where(e));
      return hits.length >= nth ? hits[nth - 1] : undefined;
    }, options.timeoutMs);
  }

  /** The events, one JSON line each, for failure messages. */
  summary(): string {
    return this.events.map((e) => JSON.stringify(e)).join("\n");
  }
}
