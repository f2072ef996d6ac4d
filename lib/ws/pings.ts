/**
 * The pings of one connection (RFC 6455 §5.5.2, §5.5.3): sending them (the
 * heartbeat's and `ping()`'s), what we still wait for, matching each pong
 * to its ping, and the round trips.
 *
 * @module
 */

import { MAX_CONTROL_PAYLOAD } from "./frame.ts";
import { type Protocol, State } from "./protocol.ts";
import { sameBytes } from "../bytes.ts";
import { quietRejection } from "../async.ts";

/** Pings awaiting their pong; older ones are given up on. */
export const MAX_PENDING_PINGS = 16;

/** Heartbeat figures of one connection. */
export interface PingStats {
  /** Pings sent (by the heartbeat and by `ping()`). */
  sent: number;
  /** Pongs that answered one of them. */
  answered: number;
  /** Smallest round trip of the answered ones (ms). */
  rttMinMs: number;
  /** Largest round trip (ms). */
  rttMaxMs: number;
  /** Sum of the round trips (ms), for the average. */
  rttSumMs: number;
}

/** A ping sent and not answered yet; `ping()`'s promise when it has one. */
interface PendingPing {
  payload: Uint8Array;
  sentAt: number;
  resolve: ((rttMs: number) => void) | null;
  reject: ((err: Error) => void) | null;
}

/** What the pings need of their connection. */
export interface PingHost {
  /** The connection, whose `onpingsent` is called (with it as `this`) for each ping sent. */
  readonly owner: { onpingsent: ((payload: Uint8Array) => void) | null };
  /** Writes what is queued, soon. */
  flushSoon(): void;
  /** `onpingsent` threw: the application's fault. */
  deliveryFailed(err: unknown): void;
}

const noop = () => {};

/** The pings a connection sends, the pongs they wait for, and their figures. */
export class Pings {
  /** The figures, updated in place. */
  readonly stats: PingStats = { sent: 0, answered: 0, rttMinMs: 0, rttMaxMs: 0, rttSumMs: 0 };
  #p: Protocol;
  #host: PingHost;
  #clock: () => number;
  #seq = 0;
  #pending: PendingPing[] = [];

  /**
   * @param p the protocol that queues the ping frames
   * @param host the connection
   * @param clock the connection's clock, in ms
   */
  constructor(p: Protocol, host: PingHost, clock: () => number) {
    this.#p = p;
    this.#host = host;
    this.#clock = clock;
  }

  /**
   * `ping()`: sends a ping and resolves with its round trip in ms when its
   * pong comes. Rejects when the connection is not open or ends first;
   * throws a RangeError for a payload over 125 bytes.
   */
  ping(payload?: Uint8Array): Promise<number> {
    if (payload && payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError("a ping payload is at most 125 bytes");
    }
    if (this.#p.state !== State.Open) return quietRejection("the WebSocket connection is not open");
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    promise.catch(noop);
    this.#send(payload, resolve, reject);
    return promise;
  }

  /** The heartbeat's ping, while the connection is open. */
  due(): void {
    if (this.#p.state === State.Open) this.#send();
  }

  /** Pings that wait for their pong. */
  get pending(): number {
    return this.#pending.length;
  }

  /**
   * Queues a ping with a copy of `given`, or the next sequence number
   * (4 bytes, big-endian), gives up on the oldest once more than
   * MAX_PENDING_PINGS wait, and tells onpingsent.
   */
  #send(
    given?: Uint8Array,
    resolve: ((rttMs: number) => void) | null = null,
    reject: ((err: Error) => void) | null = null,
  ): void {
    let payload: Uint8Array;
    if (given === undefined) {
      payload = new Uint8Array(4);
      new DataView(payload.buffer).setUint32(0, this.#seq = (this.#seq + 1) >>> 0);
    } else {
      payload = given.slice();
    }
    this.#p.ping(payload);
    this.stats.sent++;
    this.#pending.push({ payload, sentAt: this.#clock(), resolve, reject });
    if (this.#pending.length > MAX_PENDING_PINGS) {
      this.#pending.shift()!.reject?.(new Error("no pong came for this ping"));
    }
    const host = this.#host;
    host.flushSoon();
    if (host.owner.onpingsent) {
      try {
        host.owner.onpingsent(payload);
      } catch (err) {
        // The application's fault, as with onmessage; never the watchdog's timer.
        host.deliveryFailed(err);
      }
    }
  }

  /**
   * A pong arrived: settles the ping it answers and every older one (a
   * peer may answer only the latest of several, §5.5.3), and returns the
   * round trip, or null when it answers none of ours.
   */
  answer(payload: Uint8Array): number | null {
    const i = this.#pending.findIndex((p) => sameBytes(p.payload, payload));
    if (i < 0) return null;
    const now = this.#clock();
    const rtt = now - this.#pending[i].sentAt;
    for (const p of this.#pending.splice(0, i + 1)) p.resolve?.(now - p.sentAt);
    const s = this.stats;
    s.rttMinMs = s.answered === 0 ? rtt : Math.min(s.rttMinMs, rtt);
    s.rttMaxMs = Math.max(s.rttMaxMs, rtt);
    s.rttSumMs += rtt;
    s.answered++;
    return rtt;
  }

  /** Rejects every ping still waiting with `err`: no pong can come any more. */
  rejectAll(err: Error): void {
    for (const p of this.#pending) p.reject?.(err);
    this.#pending = [];
  }
}
