/**
 * The machinery behind a {@linkcode WebSocketConn}: the I/O between its
 * {@linkcode Protocol} and its stream. It pumps bytes from the socket into
 * the protocol (and the messages on to the {@linkcode Inbox}), has the
 * {@linkcode Outbox} write what the protocol queues, runs the closing
 * timers, and is the connection as the shared watchdog and memory budget
 * see it. Every protocol decision is the protocol's; every wait is bounded
 * here.
 *
 * Nothing here is public: the application sees `WebSocketConn`, which owns
 * one `Link` and hands its calls over.
 *
 * @module
 */

import {
  AbnormalClosure,
  type CloseCause,
  type CloseInfo,
  InternalError,
  isValidWireCode,
  NormalClosure,
  PolicyViolation,
  TryAgainLater,
} from "./close.ts";
import type { BudgetMember, MemoryBudget } from "./budget.ts";
import { DEFAULT_SEND_HIGH_WATER, Progress, Protocol, State } from "./protocol.ts";
import { joinWatchdog, type WatchdogMember } from "./watchdog.ts";
import { Inbox, type InboxHost } from "./inbox.ts";
import { Outbox, type OutboxHost } from "./outbox.ts";
import { type PingHost, Pings } from "./pings.ts";
import {
  classifyByType,
  type ConnOptions,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  type ErrorClassifier,
  FAIL_FLUSH_TIMEOUT_MS,
} from "./options.ts";
import { nextTurn } from "../async.ts";
import { Deadlines, type Expiring } from "../deadlines.ts";
import { errorText } from "../errors.ts";

/** The application's hooks, on the connection that owns a link. */
export interface LinkOwner {
  /** Called for each ping received. */
  onping: ((payload: Uint8Array) => void) | null;
  /** Called for each pong received. */
  onpong: ((rttMs: number | null) => void) | null;
  /** Called for each ping this side sends. */
  onpingsent: ((payload: Uint8Array) => void) | null;
}

/** The closing handshakes under way, each bounded by its deadline. */
const closing = new Deadlines();

/** One connection's I/O, timers and hooks; see the module doc. */
export class Link
  implements WatchdogMember, BudgetMember<LinkOwner>, InboxHost, OutboxHost, PingHost, Expiring {
  /** The connection this link works for: what the budget's `onEvict` is handed. */
  readonly owner: LinkOwner;
  /** The protocol state machine. */
  readonly core: Protocol;
  /** Resolves once, when the connection has ended, with how it ended. */
  readonly closed: Promise<CloseInfo>;
  /** The pings sent and their pongs. */
  readonly pings: Pings;
  /** The messages on their way to the application. */
  readonly inbox: Inbox;
  /** The way out: sends and writes. */
  readonly out: Outbox;
  /** Charged to the memory budget (kept by the budget). */
  charged = 0;

  #conn: Deno.Conn;
  #clock: () => number;
  #classify: ErrorClassifier;
  #budget: MemoryBudget | null;
  #closeTimeoutMs: number;
  #done = Promise.withResolvers<CloseInfo>();
  #finished = false;
  #tcpEnded = false;

  // Reading
  #reading = false;
  #frozen = false;
  #lastReceived: number;
  #resume: PromiseWithResolvers<void> | null = null;

  // Closing
  #leaveWatchdog: () => void;
  #closingSeen = false;
  #failSeen = false;

  /**
   * Starts the I/O of `owner` on `conn`, whose handshake is done.
   *
   * @param owner the connection, whose hooks are called
   * @param conn the TCP or TLS stream
   * @param options role, limits, timers and budget
   */
  constructor(owner: LinkOwner, conn: Deno.Conn, options: ConnOptions) {
    this.owner = owner;
    this.#conn = conn;
    this.#clock = options.clock ?? Date.now;
    this.#classify = options.classifyError ?? classifyByType;
    this.#closeTimeoutMs = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const highWater = options.sendHighWater ?? DEFAULT_SEND_HIGH_WATER;
    this.core = new Protocol({
      role: options.role,
      maxMessageSize: options.maxMessageSize,
      maxFragments: options.maxFragments,
      sendHighWater: highWater,
      autoPong: options.autoPong,
      deflate: options.deflate,
    }, {
      message: (m) => this.inbox.deliver(m),
      ping: (payload) => owner.onping?.(payload),
      pong: (payload) => {
        const rtt = this.pings.answer(payload); // before the hook, which may be unset
        owner.onpong?.(rtt);
      },
    });
    this.pings = new Pings(this.core, this, this.#clock);
    this.inbox = new Inbox(this.core, this, owner);
    this.out = new Outbox(conn, this.core, this.#clock, this, {
      highWater,
      zeroCopy: options.role === "server", // only unmasked payloads go uncopied
    });
    this.closed = this.#done.promise;
    this.#lastReceived = this.#clock();
    this.#budget = options.budget ?? null;
    this.#budget?.join(this);
    this.#leaveWatchdog = joinWatchdog(this, {
      pingInterval: options.pingInterval ?? 0,
      pongTimeout: options.pongTimeout ?? 0,
      stallTimeout: options.stallTimeout ?? DEFAULT_STALL_TIMEOUT_MS,
    }, this.#clock);
    if (options.initial && options.initial.length > 0) {
      this.core.receive(options.initial);
      // Frames came with the handshake: let the owner, who gets the
      // connection through an `await`, set onmessage before they are handled.
      nextTurn().then(() => this.#pump());
    } else {
      queueMicrotask(() => this.#pump());
    }
  }

  /** The address of the peer. */
  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  /** When a frame last arrived (ms on the connection's clock). */
  get lastFrameAt(): number {
    return this.#lastReceived;
  }

  // -------------------------------------------------------------------------
  // What the application asks for (through WebSocketConn)

  /** Starts the closing handshake (see WebSocketConn.close). */
  close(
    code: number = NormalClosure,
    reason = "",
    cause: CloseCause = "local-close",
  ): Promise<CloseInfo> {
    if (!Number.isInteger(code) || !isValidWireCode(code)) {
      throw new RangeError(`close code ${code} may not be sent`);
    }
    if (this.core.state === State.Open) {
      this.core.close(code, reason, cause);
      this.#armCloseTimer(this.#closeTimeoutMs);
      this.out.schedule();
    }
    return this.closed;
  }

  /** Fails the connection, dropping what is queued (see WebSocketConn.abort). */
  abort(reason: string, code = InternalError, cause: CloseCause = "local-close"): void {
    this.#fail(code, reason, cause, undefined, true);
  }

  /** Stops reading and writing, the socket left open (see WebSocketConn.freeze). */
  freeze(): void {
    if (this.#frozen || this.#finished) return;
    this.#frozen = true;
    this.#leaveWatchdog();
    closing.clear(this);
  }

  /** Ends TCP now (see WebSocketConn.terminate). */
  terminate(error = "terminated"): void {
    this.#finish(
      this.core.info ??
        { code: AbnormalClosure, reason: "", cause: "local-close", clean: false, error },
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
    const p = this.core;
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
        this.deliveryFailed(err);
        continue;
      }
      if (p.bufferedAmount > 0) this.out.flushNow();
      this.#changed();
      if (this.#finished) return;
      if (this.#closingSeen && p.role === "server") {
        // The server ends TCP once its close frame is out (§7.1.1), and
        // nothing may follow the peer's: no read is left pending for close()
        // to cancel (a rejection costs an Error, and Deno would close the fd
        // only once the cancelled read has settled).
        await this.closed;
        return;
      }
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
      this.account();
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
        this.failed(err);
        return;
      }
      this.#reading = false;
      if (this.#finished) return;
      if (n === null) {
        this.#finish(p.receiveEof()); // the peer ended TCP
        return;
      }
      this.#lastReceived = this.#clock();
      p.commit(n);
    }
  }

  // -------------------------------------------------------------------------
  // The inbox's and the outbox's hooks

  /** Writes what is queued, soon. */
  flushSoon(): void {
    this.out.schedule();
  }

  /** Lets a paused pump look again. */
  resume(): void {
    const r = this.#resume;
    this.#resume = null;
    r?.resolve();
  }

  /** The application's onmessage (or onpingsent) threw: fail with 1011. */
  deliveryFailed(err: unknown): void {
    this.#fail(InternalError, "internal error", "local-close", errorText(err));
  }

  /** Whether TCP has ended. */
  get ended(): boolean {
    return this.#tcpEnded;
  }

  /** Whether {@linkcode freeze} stopped the I/O. */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** Tells the memory budget what this connection holds now. */
  account(): void {
    this.#budget?.update(this, this.core.held + this.inbox.bytes);
  }

  /** A batch was written: resume input below the low-water mark. */
  wrote(): void {
    if (this.#resume && this.core.bufferedAmount <= this.out.lowWater) this.resume();
    this.account();
  }

  /**
   * The socket failed (reset, timeout…) while reading or writing. A close
   * already decided (a failure, or a completed handshake) keeps its info;
   * otherwise no close frame can be exchanged any more: 1006.
   */
  failed(err: unknown): void {
    if (this.#finished) return;
    const decided = this.core.info;
    if (decided) return this.#finish(decided);
    const cause = this.#classify(err, { sentLast: this.out.lastSent > this.#lastReceived });
    this.#finish({ code: AbnormalClosure, reason: "", cause, clean: false, error: errorText(err) });
  }

  // -------------------------------------------------------------------------
  // The watchdog's and the budget's hooks

  /** When a frame last arrived; the present while input is not awaited (see WatchdogMember). */
  get lastReceived(): number {
    return this.#reading ? this.#lastReceived : this.#clock();
  }

  /** Since when a write has been pending, or 0. */
  get writingSince(): number {
    return this.out.writingSince;
  }

  /** Time to ping. */
  pingDue(): void {
    this.pings.due();
  }

  /** Nothing arrived for the pong timeout: fail, dropping what is queued. */
  timedOut(quietMs: number): void {
    this.#fail(
      InternalError,
      "pong timeout",
      "pong-timeout",
      `no frame received for ${quietMs}ms`,
      true,
    );
  }

  /** A write made no progress for the stall timeout: fail with 1008, dropping what is queued. */
  stalled(ms: number): void {
    this.#fail(
      PolicyViolation,
      "send queue stalled",
      "send-overflow",
      `the peer read nothing of ours for ${ms}ms with ${this.core.bufferedAmount} bytes queued`,
      true,
    );
  }

  /**
   * This connection holds the most of the memory budget: free it now, with
   * 1013. Returns what it still holds (a buffer a pending read writes into).
   */
  evict(): number {
    this.#fail(TryAgainLater, "server memory budget exhausted", "memory-budget", undefined, true);
    return this.core.held + this.inbox.bytes;
  }

  // -------------------------------------------------------------------------
  // Closing

  /**
   * Looks at what the protocol decided in the last step and acts on it once:
   * a close handshake under way, or a failure.
   */
  #changed(): void {
    const p = this.core;
    if (p.bufferedAmount > 0) this.out.schedule();
    if (p.failed && !this.#failSeen) {
      this.#failSeen = true;
      // A peer that was already not taking our data will not take the close
      // frame either: FAIL_FLUSH_TIMEOUT_MS. Otherwise writing it may take
      // the whole closing timeout (a saturated server reaches a pending
      // write late: measured, 14 of 485 evicted peers would otherwise see
      // TCP end first). Once it is out, the peer gets FAIL_FLUSH_TIMEOUT_MS
      // to end TCP.
      const failFlush = Math.min(FAIL_FLUSH_TIMEOUT_MS, this.#closeTimeoutMs);
      this.#armCloseTimer(this.out.writingSince !== 0 ? failFlush : this.#closeTimeoutMs);
      this.resume();
      this.#rejectPending("the WebSocket connection failed");
      // Half-close once the close frame is written, so that the peer sees it
      // before any reset; the pump keeps dropping input until the peer ends TCP.
      this.out.whenFlushed(() => {
        this.#armCloseTimer(failFlush);
        this.#halfClose();
      });
      return;
    }
    if (p.closeReceived && !this.#closingSeen && !p.failed) {
      this.#closingSeen = true;
      this.#armCloseTimer(this.#closeTimeoutMs);
      // The server ends TCP first (§7.1.1), once its close frame is written
      // (its pump reads no more); a client waits for the server to end it
      // (the pump sees the EOF). (Half-closing and waiting for the client's
      // end instead was measured: it costs a round trip per connection and
      // halves the accept rate of sequential clients.)
      if (p.role === "server") this.out.whenFlushed(() => this.#finish(p.info!));
    }
  }

  /** Fails the connection; `dropOutput` frees what is queued first (see Protocol.dropOutput). */
  #fail(code: number, reason: string, cause: CloseCause, error?: string, dropOutput = false): void {
    if (dropOutput && !this.core.failed) this.core.dropOutput();
    this.core.fail(code, reason, cause, error);
    this.#changed();
  }

  async #halfClose(): Promise<void> {
    if (this.#tcpEnded) return;
    try {
      await this.#conn.closeWrite();
    } catch {
      // The peer is gone: nothing is left to protect.
      this.#finish(this.core.info!);
    }
  }

  /**
   * Bounds the closing handshake: after `ms` TCP is ended whatever the state.
   * A close frame of ours still unwritten makes the end unclean.
   */
  #armCloseTimer(ms: number): void {
    closing.set(this, ms);
  }

  /** The closing deadline (armCloseTimer) has passed: TCP ends now. */
  expired(): void {
    const info = this.core.info;
    if (info) {
      this.#finish({ ...info, clean: info.clean && this.core.bufferedAmount === 0 });
      return;
    }
    this.#finish({
      code: AbnormalClosure,
      reason: "",
      cause: "local-close",
      clean: false,
      error: "the peer did not answer the close frame in time",
    });
  }

  /** Ends everything once: timers, TCP, waiters, and the `closed` promise. */
  #finish(info: CloseInfo): void {
    if (this.#finished) return;
    this.#finished = true;
    const final = this.core.finish(info);
    this.#leaveWatchdog();
    this.#budget?.leave(this);
    closing.clear(this);
    if (!this.#tcpEnded) {
      this.#tcpEnded = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
    this.#rejectPending("the WebSocket connection closed");
    this.resume();
    this.inbox.end();
    this.#done.resolve(final);
  }

  /** Rejects sends and pings that wait for what will never happen now. */
  #rejectPending(message: string): void {
    if (this.out.waiting === 0 && this.pings.pending === 0) return;
    const err = new Error(message);
    this.out.rejectAll(err);
    this.pings.rejectAll(err);
  }
}
