/**
 * A WebSocket connection over an open stream (TCP or TLS): the I/O around a
 * {@linkcode Protocol}. It pumps bytes from the socket into the protocol and
 * from the protocol to the socket, runs the timers (heartbeat, stall,
 * closing), and reports how the connection ended. Every protocol decision
 * is the protocol's; every wait is bounded here.
 *
 * The handshake is done elsewhere (`accept`, `dial`); this starts where the
 * first frame may arrive.
 *
 * @module
 */

import {
  type CloseCause,
  type CloseInfo,
  InternalError,
  isValidWireCode,
  NormalClosure,
} from "./close.ts";
import type { BudgetMember, MemoryBudget } from "./budget.ts";
import { type Message, Progress, Protocol, type Role, State, type Traffic } from "./protocol.ts";
import { ZERO_COPY_PAYLOAD } from "./write.ts";
import type { PerMessageDeflate } from "./deflate.ts";
import { joinWatchdog, type WatchdogMember } from "./watchdog.ts";
import { sameBytes } from "./bytes.ts";
import { errorText } from "../errors.ts";

export type { Message, Role, Traffic };
export type { CloseCause, CloseInfo };

// ---------------------------------------------------------------------------
// Defaults and limits

/**
 * How long a closing side waits for the other's close frame, or for TCP to end
 * after the close handshake, before it ends TCP itself.
 */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

/**
 * How long a write may make no progress before the peer is judged to have
 * stopped reading: the connection then fails with 1008, cause
 * `send-overflow`. A slow peer that reads makes progress; only a stuck one
 * is cut.
 */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * How long a failing connection (RFC 6455 §7.1.7) waits, once its close
 * frame is written, for the peer to end TCP before it ends TCP anyway; and
 * how long it tries to write the close frame to a peer that had stopped
 * taking our data. Otherwise writing the close frame is bounded by the
 * closing timeout.
 */
export const FAIL_FLUSH_TIMEOUT_MS = 1_000;

/** How long a write's EPIPE waits for the read to report the socket's own error. */
const BROKEN_PIPE_GRACE_MS = 50;

/** Messages the application may leave unread before reading pauses… */
const MAX_QUEUED_MESSAGES = 64;
/** …or bytes of them. */
const MAX_QUEUED_BYTES = 1024 * 1024;

/** Pings awaiting their pong; older ones are given up on. */
const MAX_PENDING_PINGS = 16;

// ---------------------------------------------------------------------------
// Types

/** Names a socket error as a close cause; `sentLast` says whether we wrote after we last read. */
export type ErrorClassifier = (err: unknown, facts: { sentLast: boolean }) => CloseCause;

/**
 * The settings of a connection that `serve()` and `dial()` take as they
 * are. Durations are in milliseconds.
 */
export interface ConnectionOptions {
  /** Largest message accepted, in bytes (default 16 MiB). */
  maxMessageSize?: number;
  /** Most frames per message (default 16,384). */
  maxFragments?: number;
  /** Send a ping this often (ms); 0 turns pings off. */
  pingInterval?: number;
  /** Fail with `pong-timeout` when nothing arrives for this long (ms); 0 turns it off. */
  pongTimeout?: number;
  /** Fail with `send-overflow` when a write makes no progress for this long (ms, default 30 s); 0 = never. */
  stallTimeout?: number;
  /** Bound on each wait of the closing handshake (ms, default 5 s). */
  closeTimeout?: number;
  /** Queued outgoing bytes above which reading pauses (default 1 MiB). */
  sendHighWater?: number;
  /** Answer pings (default true); false plays a broken peer, for fault injection. */
  autoPong?: boolean;
}

/** Options of a {@linkcode WebSocketConn}: the connection settings and what the handshake decided. */
export interface ConnOptions extends ConnectionOptions {
  /** `server` expects masked frames and sends unmasked ones; `client` the reverse. */
  role: Role;
  /** Bytes that arrived with the handshake: the first frames. */
  initial?: Uint8Array;
  /** The subprotocol agreed in the handshake, or null. */
  protocol?: string | null;
  /** permessage-deflate, when the handshake agreed it (RFC 7692). */
  deflate?: PerMessageDeflate | null;
  /** A memory budget shared with other connections; this one joins it. */
  budget?: MemoryBudget;
  /** Names socket errors (e.g. with TCP_INFO); the default knows only the error's type. */
  classifyError?: ErrorClassifier;
  /** The clock, in ms (default `Date.now`); tests inject one. */
  clock?: () => number;
}

/** Heartbeat figures of one connection. */
export interface PingStats {
  /** Pings sent (by the heartbeat and by `ping()`). */
  sent: number;
  /** Pongs that answered one of them. */
  answered: number;
  /** Smallest, largest and summed round trip of the answered ones (ms). */
  rttMinMs: number;
  /** Largest round trip (ms). */
  rttMaxMs: number;
  /** Sum of the round trips (ms), for the average. */
  rttSumMs: number;
}

interface PendingPing {
  payload: Uint8Array;
  sentAt: number;
  resolve: ((rttMs: number) => void) | null;
  reject: ((err: Error) => void) | null;
}

interface Waiter {
  pos: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

const RESOLVED = Promise.resolve();
const noop = () => {};

/** A promise that rejects without crashing the process when nobody awaits it. */
function quietRejection(message: string): Promise<never> {
  const p = Promise.reject(new Error(message));
  p.catch(noop);
  return p;
}

let turnWaiters: (() => void)[] | null = null;

/**
 * Resolves after one turn of the event loop, in which other connections'
 * reads, timers and writes run. A message through a fresh MessageChannel is
 * delivered like I/O (a timer would be clamped to 4 ms once nested); every
 * connection yielding in the same turn shares it.
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    if (turnWaiters !== null) {
      turnWaiters.push(resolve);
      return;
    }
    turnWaiters = [resolve];
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      const waiters = turnWaiters!;
      turnWaiters = null;
      for (const w of waiters) w();
    };
    port2.postMessage(null);
  });
}

/** The default classifier: what the error's type alone says. */
function classifyByType(err: unknown, facts: { sentLast: boolean }): CloseCause {
  if (err instanceof Deno.errors.TimedOut) {
    return facts.sentLast ? "user-timeout" : "keepalive-timeout";
  }
  // A TLS peer that ends TCP without close_notify ended it all the same.
  if (err instanceof Deno.errors.UnexpectedEof || /close_notify/i.test(String(err))) return "eof";
  return "reset";
}

/**
 * One WebSocket connection. Read messages with `for await` or `onmessage`,
 * send with {@linkcode WebSocketConn.send}, end with {@linkcode WebSocketConn.close};
 * {@linkcode WebSocketConn.closed} tells how it ended.
 *
 * The closing handshake (RFC 6455 §7.1), as this class runs it:
 *
 * ```text
 *   initiator                          responder
 *   close(code) ── Close(code) ───────▶ (reply with the same code,
 *                ◀────── Close(code) ──   1000 for an empty close)
 *   The server ends TCP once its close frame is written; a client waits for
 *   the server to end it. Every wait is bounded by closeTimeoutMs, after
 *   which TCP is ended anyway and `clean` is false if no answer came.
 *
 *   Failing (§7.1.7): a violation, a stall, a pong timeout, the memory
 *   budget or an exception in onmessage stops all processing of the peer's
 *   data, sends Close(code) (after what was queued, except for a stall, a
 *   pong timeout or the budget, which drop it to free memory), half-closes
 *   once it is written (so that no reset eats it), drops what still comes
 *   until the peer ends TCP, then closes. Writing the close frame is bounded
 *   by the closing timeout (by FAIL_FLUSH_TIMEOUT_MS if a write to the peer
 *   was already blocked), the wait for the peer's end by FAIL_FLUSH_TIMEOUT_MS.
 *   A socket error ends at once with 1006 unless a close was decided.
 * ```
 *
 * Flow control: while more than `sendHighWater` bytes wait to be written,
 * nothing more is read from the socket, so TCP pushes back on a peer that
 * sends faster than it reads; reading resumes below a quarter of it.
 */
export class WebSocketConn implements AsyncIterable<Message>, WatchdogMember, BudgetMember {
  /** The subprotocol agreed in the handshake, or null. */
  readonly protocol: string | null;
  /** Resolves once, when the connection has ended, with how it ended. */
  readonly closed: Promise<CloseInfo>;
  /** Heartbeat figures: pings sent and answered, round trips. */
  readonly pings: PingStats = { sent: 0, answered: 0, rttMinMs: 0, rttMaxMs: 0, rttSumMs: 0 };
  /**
   * Called for each ping received (the pong is already on its way). The
   * payload is a view into the read buffer, valid during the call: copy it
   * to keep it.
   */
  onping: ((payload: Uint8Array) => void) | null = null;
  /** Called for each pong received, with the round trip when it answers one of our pings. */
  onpong: ((rttMs: number | null) => void) | null = null;
  /** Called for each ping this side sends (the heartbeat's and `ping()`'s), as it is queued. */
  onpingsent: ((payload: Uint8Array) => void) | null = null;
  /** Charged to the memory budget (kept by the budget). */
  charged = 0;

  #conn: Deno.Conn;
  #p: Protocol;
  #clock: () => number;
  #classify: ErrorClassifier;
  #budget: MemoryBudget | null;
  #closeTimeoutMs: number;
  #lowWater: number;
  #highWater: number;
  #zeroCopy: boolean;
  #done = Promise.withResolvers<CloseInfo>();
  #finished = false;
  #tcpEnded = false;

  // Reading
  #reading = false;
  #frozen = false;
  #lastReceived: number;
  #resume: PromiseWithResolvers<void> | null = null;

  // Delivering
  #onmessage: ((message: Message) => void) | null = null;
  #queue: Message[] = [];
  #queueBytes = 0;
  #waiters: PromiseWithResolvers<IteratorResult<Message>>[] = [];

  // Writing
  #flushing = false;
  #flushQueued = false;
  #writingSince = 0;
  #lastSent = 0;
  #sendWaiters: Waiter[] = [];
  #afterFlush: (() => void) | null = null;

  // Pings
  #pingSeq = 0;
  #pendingPings: PendingPing[] = [];

  // Closing
  #leaveWatchdog: () => void;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #closingSeen = false;
  #failSeen = false;

  /**
   * Wraps a stream on which the handshake has completed, and starts reading.
   *
   * @param conn the TCP or TLS stream
   * @param options role, limits, timers and budget
   */
  constructor(conn: Deno.Conn, options: ConnOptions) {
    const ping = options.pingInterval ?? 0;
    const pong = options.pongTimeout ?? 0;
    if (ping < 0 || pong < 0 || (options.stallTimeout ?? 0) < 0) {
      throw new RangeError("timer periods are 0 (off) or positive milliseconds");
    }
    this.#conn = conn;
    this.protocol = options.protocol ?? null;
    this.#clock = options.clock ?? Date.now;
    this.#classify = options.classifyError ?? classifyByType;
    this.#closeTimeoutMs = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#highWater = options.sendHighWater ?? 1024 * 1024;
    this.#lowWater = this.#highWater / 4;
    this.#zeroCopy = options.role === "server"; // only unmasked payloads go uncopied
    this.#p = new Protocol({
      role: options.role,
      maxMessageSize: options.maxMessageSize,
      maxFragments: options.maxFragments,
      sendHighWater: this.#highWater,
      autoPong: options.autoPong,
      deflate: options.deflate,
    }, {
      message: (m) => this.#deliver(m),
      ping: (payload) => this.onping?.(payload),
      pong: (payload) => this.#pong(payload),
    });
    this.closed = this.#done.promise;
    this.#lastReceived = this.#clock();
    this.#budget = options.budget ?? null;
    this.#budget?.join(this);
    this.#leaveWatchdog = joinWatchdog(this, {
      pingIntervalMs: ping,
      pongTimeoutMs: pong,
      stallTimeoutMs: options.stallTimeout ?? DEFAULT_STALL_TIMEOUT_MS,
    }, this.#clock);
    if (options.initial && options.initial.length > 0) {
      this.#p.receive(options.initial);
      // Frames came with the handshake: let the owner, who gets this object
      // through an `await`, set onmessage before they are handled.
      nextTurn().then(() => this.#pump());
    } else {
      queueMicrotask(() => this.#pump());
    }
  }

  /**
   * Called for each message, synchronously, as it is parsed. Setting it
   * replaces the async iterator; it is the fast path for servers. Messages
   * that arrived before it was set are handed to it first, in a microtask.
   */
  get onmessage(): ((message: Message) => void) | null {
    return this.#onmessage;
  }

  set onmessage(handler: ((message: Message) => void) | null) {
    this.#onmessage = handler;
    if (handler && this.#queue.length > 0) queueMicrotask(() => this.#drainQueue());
  }

  /** The address of the peer. */
  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  /** Bytes queued or being written, not yet taken by the kernel. */
  get bufferedAmount(): number {
    return this.#p.bufferedAmount;
  }

  /** Whether the connection is still open for sending. */
  get isOpen(): boolean {
    return this.#p.state === State.Open;
  }

  /** The state: open, closing or closed. */
  get state(): State {
    return this.#p.state;
  }

  /** The extensions agreed in the handshake, as a header value ("" for none). */
  get extensions(): string {
    return this.#p.extensions;
  }

  /** Messages and bytes each way so far. */
  get traffic(): Traffic {
    return this.#p.traffic;
  }

  /** When a frame last arrived (ms on the connection's clock). */
  get lastFrameAt(): number {
    return this.#lastReceived;
  }

  // -------------------------------------------------------------------------
  // Sending

  /**
   * Sends a text (string) or binary (bytes) message. The promise honours
   * backpressure: it resolves at once while less than the high-water mark is
   * queued, and otherwise once the queue has drained to a quarter of it. A
   * binary payload of 64 KiB or more is sent from your bytes without a copy
   * (on the server side): keep them unchanged until the promise resolves.
   * Rejects when the connection is not open.
   */
  send(data: Message): Promise<void> {
    const p = this.#p;
    if (p.state !== State.Open) return quietRejection("the WebSocket connection is not open");
    p.send(data);
    this.#scheduleFlush();
    if (this.#zeroCopy && typeof data !== "string" && data.length >= ZERO_COPY_PAYLOAD) {
      return this.#written(p.queuedTotal);
    }
    if (p.bufferedAmount < this.#highWater) return RESOLVED;
    return this.#written(p.queuedTotal - this.#lowWater);
  }

  /**
   * Sends a ping and resolves with the round trip in ms when its pong comes
   * back (RFC 6455 §5.5.2). `payload` (at most 125 bytes) defaults to a
   * sequence number; the pong is matched by it. Rejects when the
   * connection ends first; throws a RangeError for a payload too long.
   */
  ping(payload?: Uint8Array): Promise<number> {
    if (payload && payload.length > 125) {
      throw new RangeError("a ping payload is at most 125 bytes");
    }
    if (this.#p.state !== State.Open) return quietRejection("the WebSocket connection is not open");
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    promise.catch(noop);
    this.#sendPing(payload, resolve, reject);
    return promise;
  }

  #sendPing(
    payload?: Uint8Array,
    resolve: ((rttMs: number) => void) | null = null,
    reject: ((err: Error) => void) | null = null,
  ): void {
    if (payload === undefined) {
      payload = new Uint8Array(4);
      new DataView(payload.buffer).setUint32(0, this.#pingSeq = (this.#pingSeq + 1) >>> 0);
    } else {
      payload = payload.slice();
    }
    this.#p.ping(payload);
    this.pings.sent++;
    this.#pendingPings.push({ payload, sentAt: this.#clock(), resolve, reject });
    if (this.#pendingPings.length > MAX_PENDING_PINGS) {
      this.#pendingPings.shift()!.reject?.(new Error("no pong came for this ping"));
    }
    this.#scheduleFlush();
    if (this.onpingsent) {
      try {
        this.onpingsent(payload);
      } catch (err) {
        // The application's fault, as with onmessage; never the watchdog's timer.
        this.#fail(InternalError, "internal error", "local-close", errorText(err));
      }
    }
  }

  #pong(payload: Uint8Array): void {
    let rtt: number | null = null;
    const i = this.#pendingPings.findIndex((p) => sameBytes(p.payload, payload));
    if (i >= 0) {
      const now = this.#clock();
      rtt = now - this.#pendingPings[i].sentAt;
      // A peer may answer only the latest of several pings (§5.5.3): all before it count too.
      for (const p of this.#pendingPings.splice(0, i + 1)) p.resolve?.(now - p.sentAt);
      const s = this.pings;
      s.rttMinMs = s.answered === 0 ? rtt : Math.min(s.rttMinMs, rtt);
      s.rttMaxMs = Math.max(s.rttMaxMs, rtt);
      s.rttSumMs += rtt;
      s.answered++;
    }
    this.onpong?.(rtt);
  }

  /**
   * Starts the closing handshake with `code` and `reason` (cut to 123 bytes),
   * and resolves when the connection has ended: when the peer has answered
   * and TCP is closed, or after closeTimeoutMs without an answer (then
   * `clean` is false). Messages that arrive meanwhile are dropped, as
   * browsers do. `cause` names why, for logs. Throws a RangeError for a code
   * that may not be sent (1005, 1006, 1015, outside 1000–4999…).
   */
  close(
    code: number = NormalClosure,
    reason = "",
    cause: CloseCause = "local-close",
  ): Promise<CloseInfo> {
    if (!Number.isInteger(code) || !isValidWireCode(code)) {
      throw new RangeError(`close code ${code} may not be sent`);
    }
    if (this.#p.state === State.Open) {
      this.#p.close(code, reason, cause);
      this.#armCloseTimer(this.#closeTimeoutMs);
      this.#scheduleFlush();
    }
    return this.closed;
  }

  /**
   * Gives up on the connection: what is queued and not yet being written is
   * dropped (its memory freed), a close frame with `code` (1011 by default)
   * and `reason` is sent, nothing more is read, and TCP ends shortly after,
   * whatever the peer does. `cause` names why, for logs.
   */
  abort(reason: string, code = InternalError, cause: CloseCause = "local-close"): void {
    this.#fail(code, reason, cause, undefined, true);
  }

  /**
   * Stops reading and writing while keeping the socket open, as a hung
   * program would (its kernel still answers TCP keepalive probes): for
   * fault injection. The heartbeat stops too; only the peer, or
   * {@linkcode terminate}, ends the connection now.
   */
  freeze(): void {
    if (this.#frozen || this.#finished) return;
    this.#frozen = true;
    this.#leaveWatchdog();
    clearTimeout(this.#closeTimer);
  }

  /** Ends TCP now, with `info` if nothing was decided yet. */
  terminate(error = "terminated"): void {
    this.#finish(
      this.#p.info ?? { code: 1006, reason: "", cause: "local-close", clean: false, error },
    );
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * Reads until TCP ends: each read goes into the protocol's buffer, and
   * the protocol handles every complete frame. Input waits while the send
   * queue is above its high-water mark or the application holds too many
   * messages; after a turn's worth of work the pump yields, so one busy
   * peer cannot starve the others.
   */
  async #pump(): Promise<void> {
    const p = this.#p;
    while (!this.#finished) {
      if (this.#frozen) {
        await this.closed;
        return;
      }
      let progress: number;
      try {
        progress = p.process();
      } catch (err) {
        // Thrown by the application's onmessage: our fault, not the peer's.
        this.#fail(InternalError, "internal error", "local-close", errorText(err));
        continue;
      }
      this.#changed();
      if (this.#finished) return;
      if (progress === Progress.Paused) {
        this.#resume ??= Promise.withResolvers<void>();
        await this.#resume.promise;
        continue;
      }
      if (progress === Progress.Yield) {
        await nextTurn();
        continue;
      }
      let target = p.readTarget();
      this.#account();
      // Accounting the buffer may have evicted this very connection, which
      // released the buffer `target` points into: read into the sink instead
      // (a read into a detached view returns 0 bytes at once, a wasted turn).
      if (target.byteLength === 0) target = p.readTarget();
      let n: number | null;
      this.#reading = true;
      try {
        n = await this.#conn.read(target);
      } catch (err) {
        this.#reading = false;
        this.#socketFailed(err);
        return;
      }
      this.#reading = false;
      if (this.#finished) return;
      if (n === null) {
        this.#tcpEndedByPeer();
        return;
      }
      this.#lastReceived = this.#clock();
      p.commit(n);
    }
  }

  /** A message for the application: to onmessage, a waiting iterator, or the queue. */
  #deliver(message: Message): void {
    if (this.#onmessage) {
      this.#onmessage(message);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve({ value: message, done: false });
      return;
    }
    this.#queue.push(message);
    this.#queueBytes += message.length;
    if (this.#queue.length >= MAX_QUEUED_MESSAGES || this.#queueBytes >= MAX_QUEUED_BYTES) {
      this.#p.holdInput = true; // the application is behind: stop reading
    }
  }

  /** Hands messages queued before onmessage was set to it. */
  #drainQueue(): void {
    try {
      while (this.#onmessage && this.#queue.length > 0) this.#onmessage(this.#take()!);
    } catch (err) {
      this.#fail(InternalError, "internal error", "local-close", errorText(err));
    }
  }

  /** Takes the oldest queued message, resuming input once the queue is short again. */
  #take(): Message | undefined {
    const value = this.#queue.shift();
    if (value === undefined) return undefined;
    this.#queueBytes -= value.length;
    if (
      this.#p.holdInput && this.#queue.length < MAX_QUEUED_MESSAGES / 2 &&
      this.#queueBytes < MAX_QUEUED_BYTES / 2
    ) {
      this.#p.holdInput = false;
      this.#wake();
    }
    return value;
  }

  /**
   * Yields each message until the connection ends; messages that arrived
   * before the end are still yielded. Leaving the loop early (`break`) does
   * not close the connection. While 64 messages or 1 MiB wait unread,
   * reading pauses (TCP flow control then slows the peer).
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => {
        const value = this.#take();
        if (value !== undefined) return Promise.resolve({ value, done: false });
        if (this.#finished) return Promise.resolve({ value: undefined, done: true });
        const waiter = Promise.withResolvers<IteratorResult<Message>>();
        this.#waiters.push(waiter);
        return waiter.promise;
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  /** Lets a paused pump look again. */
  #wake(): void {
    const r = this.#resume;
    this.#resume = null;
    r?.resolve();
  }

  // -------------------------------------------------------------------------
  // Writing

  #scheduleFlush(): void {
    if (this.#flushing || this.#flushQueued || this.#tcpEnded || this.#frozen) return;
    this.#flushQueued = true;
    // Sends made in the same turn (e.g. the echoes of one read) join one write.
    queueMicrotask(() => this.#flush());
  }

  /** Writes everything the protocol has queued, batch by batch. */
  async #flush(): Promise<void> {
    this.#flushQueued = false;
    if (this.#flushing || this.#tcpEnded) return;
    this.#flushing = true;
    const p = this.#p;
    try {
      let chunks: Uint8Array[] | null;
      while (!this.#tcpEnded && !this.#frozen && (chunks = p.takeOutput()) !== null) {
        this.#account();
        for (const chunk of chunks) {
          let off = 0;
          while (off < chunk.length) {
            this.#writingSince = this.#clock();
            const n = await this.#conn.write(off === 0 ? chunk : chunk.subarray(off));
            off += n;
            p.written(n);
          }
        }
        this.#writingSince = 0;
        this.#lastSent = this.#clock();
        this.#wrote();
      }
    } catch (err) {
      this.#writingSince = 0;
      this.#flushing = false;
      // EPIPE says only that the socket is dead; its real error (ETIMEDOUT,
      // ECONNRESET) went to the pending read, whose rejection may settle
      // just after ours. Let it name the cause first.
      if (err instanceof Deno.errors.BrokenPipe) {
        setTimeout(() => this.#socketFailed(err), BROKEN_PIPE_GRACE_MS);
      } else {
        this.#socketFailed(err);
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

  /** A batch was written: settle the sends waiting for it, and resume input below the low-water mark. */
  #wrote(): void {
    const p = this.#p;
    if (this.#sendWaiters.length > 0) {
      const at = p.writtenTotal;
      this.#sendWaiters = this.#sendWaiters.filter((w) => {
        if (w.pos > at) return true;
        w.resolve();
        return false;
      });
    }
    if (this.#resume && p.bufferedAmount <= this.#lowWater) this.#wake();
    this.#account();
  }

  /** A promise for the moment the outgoing stream is written up to `pos`. */
  #written(pos: number): Promise<void> {
    if (this.#p.writtenTotal >= pos) return RESOLVED;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(noop); // a send nobody awaits must not crash the process
    this.#sendWaiters.push({ pos, resolve, reject });
    return promise;
  }

  /** Runs `then` once everything queued is written (at once if nothing is). */
  #whenFlushed(then: () => void): void {
    if (this.#p.bufferedAmount === 0 && !this.#flushing) {
      then();
      return;
    }
    this.#afterFlush = then;
    this.#scheduleFlush();
  }

  // -------------------------------------------------------------------------
  // Closing

  /**
   * Looks at what the protocol decided in the last step and acts on it once:
   * a close handshake under way, or a failure.
   */
  #changed(): void {
    const p = this.#p;
    if (p.bufferedAmount > 0) this.#scheduleFlush();
    if (p.failed && !this.#failSeen) {
      this.#failSeen = true;
      // A peer that was already not taking our data will not take the close
      // frame either: FAIL_FLUSH_TIMEOUT_MS. Otherwise writing it may take
      // the whole closing timeout (a saturated server reaches a pending
      // write late: measured, 14 of 485 evicted peers would otherwise see
      // TCP end first). Once it is out, the peer gets FAIL_FLUSH_TIMEOUT_MS
      // to end TCP.
      const failFlush = Math.min(FAIL_FLUSH_TIMEOUT_MS, this.#closeTimeoutMs);
      this.#armCloseTimer(this.#writingSince !== 0 ? failFlush : this.#closeTimeoutMs);
      this.#wake();
      this.#rejectPending("the WebSocket connection failed");
      // Half-close once the close frame is written, so that the peer sees it
      // before any reset; the pump keeps dropping input until the peer ends TCP.
      this.#whenFlushed(() => {
        this.#armCloseTimer(failFlush);
        this.#halfClose();
      });
      return;
    }
    if (p.closeReceived && !this.#closingSeen && !p.failed) {
      this.#closingSeen = true;
      this.#armCloseTimer(this.#closeTimeoutMs);
      // The server ends TCP first (§7.1.1), once its close frame is written;
      // a client waits for the server to end it (the pump sees the EOF).
      // (Half-closing and waiting for the client's end instead would spare
      // the pending read's rejection, but measured: it costs a round trip
      // per connection and halves the accept rate of sequential clients.)
      if (p.role === "server") this.#whenFlushed(() => this.#finish(p.info!));
    }
  }

  /** Fails the connection; `dropOutput` frees what is queued first (see Protocol.dropOutput). */
  #fail(code: number, reason: string, cause: CloseCause, error?: string, dropOutput = false): void {
    if (dropOutput && !this.#p.failed) this.#p.dropOutput();
    this.#p.fail(code, reason, cause, error);
    this.#changed();
  }

  async #halfClose(): Promise<void> {
    if (this.#tcpEnded) return;
    try {
      await this.#conn.closeWrite();
    } catch {
      // The peer is gone: nothing is left to protect.
      this.#finish(this.#p.info!);
    }
  }

  /**
   * Bounds the closing handshake: after `ms` TCP is ended whatever the state.
   * A close frame of ours still unwritten makes the end unclean.
   */
  #armCloseTimer(ms: number): void {
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => {
      const info = this.#p.info;
      if (info) {
        this.#finish({ ...info, clean: info.clean && this.bufferedAmount === 0 });
        return;
      }
      this.#finish({
        code: 1006,
        reason: "",
        cause: "local-close",
        clean: false,
        error: "the peer did not answer the close frame in time",
      });
    }, ms);
  }

  /** The peer ended TCP (read returned EOF). */
  #tcpEndedByPeer(): void {
    this.#finish(this.#p.receiveEof());
  }

  /**
   * The socket failed (reset, timeout…) while reading or writing. A close
   * already decided (a failure, or a completed handshake) keeps its info;
   * otherwise no close frame can be exchanged any more: 1006.
   */
  #socketFailed(err: unknown): void {
    if (this.#finished) return;
    const decided = this.#p.info;
    if (decided) return this.#finish(decided);
    const cause = this.#classify(err, { sentLast: this.#lastSent > this.#lastReceived });
    this.#finish({ code: 1006, reason: "", cause, clean: false, error: errorText(err) });
  }

  /** Ends everything once: timers, TCP, waiters, and the `closed` promise. */
  #finish(info: CloseInfo): void {
    if (this.#finished) return;
    this.#finished = true;
    const final = this.#p.finish(info);
    this.#leaveWatchdog();
    this.#budget?.leave(this);
    clearTimeout(this.#closeTimer);
    if (!this.#tcpEnded) {
      this.#tcpEnded = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
    this.#rejectPending("the WebSocket connection closed");
    this.#wake();
    for (const w of this.#waiters) w.resolve({ value: undefined, done: true });
    this.#waiters = [];
    this.#done.resolve(final);
  }

  /** Rejects sends and pings that wait for what will never happen now. */
  #rejectPending(message: string): void {
    if (this.#sendWaiters.length === 0 && this.#pendingPings.length === 0) return;
    const err = new Error(message);
    for (const w of this.#sendWaiters) w.reject(err);
    this.#sendWaiters = [];
    for (const p of this.#pendingPings) p.reject?.(err);
    this.#pendingPings = [];
  }

  /** Tells the memory budget what this connection holds now. */
  #account(): void {
    this.#budget?.update(this, this.#p.held + this.#queueBytes);
  }

  // -------------------------------------------------------------------------
  // The watchdog and the budget

  /** When a frame last arrived; the present while input is not awaited (see WatchdogMember). */
  get lastReceived(): number {
    return this.#reading ? this.#lastReceived : this.#clock();
  }

  /** Since when a write has been pending, or 0. */
  get writingSince(): number {
    return this.#writingSince;
  }

  /** Called by the watchdog: time to ping. */
  pingDue(): void {
    if (this.#p.state === State.Open) this.#sendPing();
  }

  /** Called by the watchdog: nothing arrived for the pong timeout. */
  timedOut(quietMs: number): void {
    this.#fail(
      InternalError,
      "pong timeout",
      "pong-timeout",
      `no frame received for ${quietMs}ms`,
      true,
    );
  }

  /** Called by the watchdog: a write made no progress for the stall timeout. */
  stalled(ms: number): void {
    this.#fail(
      1008,
      "send queue stalled",
      "send-overflow",
      `the peer read nothing of ours for ${ms}ms with ${this.bufferedAmount} bytes queued`,
      true,
    );
  }

  /**
   * Called by the memory budget: this connection holds the most; free it
   * now. Returns what it still holds (a buffer a pending read writes into).
   */
  evict(): number {
    this.#fail(1013, "server memory budget exhausted", "memory-budget", undefined, true);
    return this.#p.held + this.#queueBytes;
  }
}
