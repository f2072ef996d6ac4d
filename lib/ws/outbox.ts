/**
 * The way out of a connection: writes what its {@linkcode Protocol} has
 * queued to the stream, batch by batch (the sends of one turn join one
 * write), and settles the sends that wait for their bytes to be taken by
 * the kernel.
 *
 * @module
 */

import { type Message, type Protocol, State } from "./protocol.ts";
import { ZERO_COPY_PAYLOAD } from "./write.ts";
import { nextTurn, quietRejection } from "../async.ts";

/** How long a write's EPIPE waits for the read to report the socket's own error. */
const BROKEN_PIPE_GRACE_MS = 50;

/**
 * A send waiting until the outgoing stream is written up to `pos`, the
 * deferred message `seq` is compressed and queued, and no more than
 * `level` bytes are buffered.
 */
interface Waiter {
  pos: number;
  seq: number;
  level: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** What an outbox needs of its connection. */
export interface OutboxHost {
  /** Whether TCP has ended: nothing may be written any more. */
  readonly ended: boolean;
  /** Whether the connection is frozen (fault injection): nothing is written for now. */
  readonly frozen: boolean;
  /** Tells the memory budget what the connection holds now. */
  account(): void;
  /** A batch was written (its sends are settled): input may go on. */
  wrote(): void;
  /** Writing failed: the socket is dead. */
  failed(err: unknown): void;
}

const RESOLVED = Promise.resolve();
const noop = () => {};

/** How an outbox paces its sends. */
export interface OutboxOptions {
  /** Queued bytes at and above which a send's promise waits (sendHighWater). */
  highWater: number;
  /** Whether large binary payloads are sent from the caller's bytes (unmasked, so a server's). */
  zeroCopy: boolean;
}

/** Writes one connection's output and keeps its promises. */
export class Outbox {
  /** Queued bytes below which input resumes, and to which a waiting send drains: a quarter of highWater. */
  readonly lowWater: number;
  /** Since when a write has been pending (ms on the connection's clock), or 0. */
  writingSince = 0;
  /** When the last batch was written completely, or 0. */
  lastSent = 0;
  #stream: Deno.Conn;
  #p: Protocol;
  #clock: () => number;
  #host: OutboxHost;
  #highWater: number;
  #zeroCopy: boolean;
  #flushing = false;
  #queued = false;
  #waiters: Waiter[] = [];
  #afterFlush: (() => void) | null = null;

  /**
   * @param stream where the bytes go
   * @param p the protocol whose output this writes
   * @param clock the connection's clock, in ms
   * @param host the connection
   * @param options the high-water mark and whether to send without copying
   */
  constructor(
    stream: Deno.Conn,
    p: Protocol,
    clock: () => number,
    host: OutboxHost,
    options: OutboxOptions,
  ) {
    this.#stream = stream;
    this.#p = p;
    this.#clock = clock;
    this.#host = host;
    this.#highWater = options.highWater;
    this.lowWater = options.highWater / 4;
    this.#zeroCopy = options.zeroCopy;
  }

  /**
   * Queues a message and writes it soon. The promise honours backpressure:
   * it resolves at once below the high-water mark, else once the queue has
   * drained to the low-water mark; a payload sent without a copy waits
   * until it is written. Rejects when the connection is not open.
   */
  send(data: Message): Promise<void> {
    const p = this.#p;
    if (p.state !== State.Open) return quietRejection("the WebSocket connection is not open");
    const before = p.lastDeferred;
    p.send(data);
    this.schedule();
    if (p.lastDeferred !== before) return this.#deferred(data, p.lastDeferred);
    if (this.#zeroCopy && typeof data !== "string" && data.length >= ZERO_COPY_PAYLOAD) {
      return this.written(p.queuedTotal);
    }
    if (p.bufferedAmount < this.#highWater) return RESOLVED;
    return this.written(p.queuedTotal - this.lowWater);
  }

  /** Whether a write is under way. */
  get flushing(): boolean {
    return this.#flushing;
  }

  /** Writes what is queued, soon: sends made in the same turn (e.g. the echoes of one read) join one write. */
  schedule(): void {
    const host = this.#host;
    if (this.#flushing || this.#queued || host.ended || host.frozen) return;
    this.#queued = true;
    queueMicrotask(() => this.#flush());
  }

  /**
   * Writes what is queued now rather than in a microtask: for the pump,
   * once a read's frames are handled, so that their answers (the echoes of
   * one read) go out in one write before the next read is asked for.
   */
  flushNow(): void {
    const host = this.#host;
    if (this.#flushing || host.ended || host.frozen) return;
    this.#flush();
  }

  /** A promise for the moment the outgoing stream is written up to `pos`. */
  written(pos: number): Promise<void> {
    return this.#wait(pos, 0, Infinity);
  }

  /**
   * The promise of a send that was deferred behind (or as) a message
   * compressed in slices: a binary payload is read from the caller's bytes
   * until it is compressed, so its promise waits for that; above the
   * high-water mark, it also waits for the queue to drain to the low-water
   * mark.
   */
  #deferred(data: Message, seq: number): Promise<void> {
    const above = this.#p.bufferedAmount >= this.#highWater;
    const level = above ? this.lowWater : Infinity;
    if (typeof data !== "string") return this.#wait(0, seq, level);
    return above ? this.#wait(0, 0, level) : RESOLVED;
  }

  #wait(pos: number, seq: number, level: number): Promise<void> {
    if (this.#ready(pos, seq, level)) return RESOLVED;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(noop); // a send nobody awaits must not crash the process
    this.#waiters.push({ pos, seq, level, resolve, reject });
    return promise;
  }

  #ready(pos: number, seq: number, level: number): boolean {
    const p = this.#p;
    return p.writtenTotal >= pos && p.deferredDone >= seq && p.bufferedAmount <= level;
  }

  /** Runs `then` once everything queued is written (at once if nothing is). */
  whenFlushed(then: () => void): void {
    if (this.#p.bufferedAmount === 0 && !this.#flushing) {
      then();
      return;
    }
    this.#afterFlush = then;
    this.schedule();
  }

  /** Sends that wait for their bytes to be written. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Rejects every send still waiting with `err`: its bytes will never be written. */
  rejectAll(err: Error): void {
    for (const w of this.#waiters) w.reject(err);
    this.#waiters = [];
  }

  /** Writes everything the protocol has queued, batch by batch. */
  async #flush(): Promise<void> {
    this.#queued = false;
    const host = this.#host;
    if (this.#flushing || host.ended) return;
    this.#flushing = true;
    const p = this.#p;
    try {
      while (!host.ended && !host.frozen) {
        const chunks = p.takeOutput();
        if (chunks === null) {
          if (!p.outputPending) break;
          await nextTurn(); // a slice compressed to nothing yet: the next one, after the others
          continue;
        }
        host.account();
        for (const chunk of chunks) {
          let off = 0;
          while (off < chunk.length) {
            this.writingSince = this.#clock();
            const n = await this.#stream.write(off === 0 ? chunk : chunk.subarray(off));
            off += n;
            p.written(n);
          }
        }
        this.writingSince = 0;
        this.lastSent = this.#clock();
        this.#settle();
        host.wrote();
        // A message compressed in slices: let other connections run between them.
        if (p.outputPending) await nextTurn();
      }
    } catch (err) {
      this.writingSince = 0;
      this.#flushing = false;
      // EPIPE says only that the socket is dead; its real error (ETIMEDOUT,
      // ECONNRESET) went to the pending read, whose rejection may settle
      // just after ours. Let it name the cause first.
      if (err instanceof Deno.errors.BrokenPipe) {
        setTimeout(() => host.failed(err), BROKEN_PIPE_GRACE_MS);
      } else {
        host.failed(err);
      }
      return;
    }
    this.#flushing = false;
    if (p.bufferedAmount === 0 && this.#afterFlush) {
      const then = this.#afterFlush;
      this.#afterFlush = null;
      then();
    }
  }

  /** Settles the sends whose bytes are all written now. */
  #settle(): void {
    if (this.#waiters.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => {
      if (!this.#ready(w.pos, w.seq, w.level)) return true;
      w.resolve();
      return false;
    });
  }
}
