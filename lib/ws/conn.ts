/**
 * A WebSocket connection over an open TCP (or TLS) stream: it reads and
 * parses frames, writes coalesced frames, answers pings, keeps a heartbeat,
 * and closes with a named cause. RFC 6455 §5–§7.
 *
 * The handshake is done elsewhere (`lib/server.ts`, `dial.ts`); this module
 * starts where the first frame may arrive. Writing lives in `outbox.ts`, the
 * shared ping timer in `heartbeat.ts`.
 *
 * @module
 */

import { ProtocolViolation } from "./errors.ts";
import { isControl, MAX_HEADER_SIZE, Opcode, readFrameHeader } from "./frame.ts";
import { joinHeartbeat } from "./heartbeat.ts";
import { unmask } from "./mask.ts";
import { Outbox } from "./outbox.ts";
import {
  AbnormalClosure,
  buildClosePayload,
  type CloseCause,
  InternalError,
  isValidWireCode,
  MessageTooBig,
  NormalClosure,
  NoStatusReceived,
  parseClosePayload,
  PolicyViolation,
  ProtocolError,
} from "./close.ts";
import { readTcpTimes } from "../tcp/sockopt.ts";

// ---------------------------------------------------------------------------
// Defaults and limits

/** Default largest message accepted, in bytes (16 MiB); larger ones get 1009. */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/**
 * How long a closing side waits for the other's close frame, or for TCP to end
 * after the close handshake, before it ends TCP itself.
 */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

/**
 * Bytes that may wait in the send queue (queued plus being written) before a
 * further send, ping or pong fails the connection with close 1008 and cause
 * `send-overflow`: a peer that stops reading cannot make us buffer without
 * limit. One message is always accepted into an empty queue.
 */
export const DEFAULT_MAX_SEND_QUEUE = 16 * 1024 * 1024;

/**
 * How long a failing connection (RFC 6455 §7.1.7) waits for its close frame
 * to be written before it ends TCP anyway: the peer may not be reading.
 */
export const FAIL_FLUSH_TIMEOUT_MS = 1_000;

/** How long a write's EPIPE waits for the read to report the socket's own error. */
const BROKEN_PIPE_GRACE_MS = 50;
/** First size of a connection's read buffer; small, so idle connections are cheap. */
const INITIAL_READ_BUFFER = 512;
/** The read buffer doubles while reads fill it, up to this size. */
const MAX_READ_BUFFER = 64 * 1024;
/** A frame payload larger than this is read straight into its own buffer. */
const DIRECT_PAYLOAD_THRESHOLD = 16 * 1024;
/** Messages the async iterator may hold before reading pauses. */
const MAX_QUEUED_MESSAGES = 64;

// ---------------------------------------------------------------------------
// Types

/** Which end of the connection this is; it decides masking (RFC 6455 §5.3). */
export type Role = "server" | "client";

/** A received message: a string for text, bytes for binary. */
export type Message = string | Uint8Array;

/** Running totals, shared by all connections of a process (for /metrics). */
export interface Counters {
  /** Messages received. */
  messagesIn: number;
  /** Messages sent. */
  messagesOut: number;
  /** Payload bytes received. */
  bytesIn: number;
  /** Payload bytes sent. */
  bytesOut: number;
}

/** How a connection ended. */
export interface CloseInfo {
  /** The close code: the peer's, ours, or 1006 when no close frame was exchanged. */
  code: number;
  /** The close reason, "" when there was none. */
  reason: string;
  /** Why the connection ended. */
  cause: CloseCause;
  /** Whether close frames went both ways. */
  wasClean: boolean;
  /** The underlying error, for causes that come from the socket. */
  error?: string;
}

/** The fields of a `close` log event for `info`, on a connection opened at `startedMs`. */
export function closeLogFields(info: CloseInfo, startedMs: number): Record<string, unknown> {
  return {
    code: info.code,
    reason: info.reason,
    cause: info.cause,
    clean: info.wasClean,
    error: info.error,
    duration_ms: Date.now() - startedMs,
  };
}

/** Options of a {@linkcode WebSocketConn}. */
export interface ConnOptions {
  /** `server` expects masked frames and sends unmasked ones; `client` the reverse. */
  role: Role;
  /** Bytes that arrived with the handshake: the first frames. */
  initial?: Uint8Array;
  /** The subprotocol agreed in the handshake, or null. */
  protocol?: string | null;
  /** Largest message accepted, in bytes. */
  maxMessageSize?: number;
  /** Send a ping this often; 0 turns pings off. */
  pingIntervalMs?: number;
  /** Fail with `pong-timeout` when nothing arrives for this long; 0 turns it off. */
  pongTimeoutMs?: number;
  /** Bound on each wait of the closing handshake. */
  closeTimeoutMs?: number;
  /** Bound on queued outgoing bytes. */
  maxSendQueue?: number;
  /** Whether TCP keepalive is on, so ETIMEDOUT can be named `keepalive-timeout`. */
  keepAlive?: boolean;
  /** TCP_USER_TIMEOUT in force (ms, 0 = none), so ETIMEDOUT can be named `user-timeout`. */
  userTimeoutMs?: number;
  /** Totals to add this connection's traffic to. */
  counters?: Counters;
}

type State = "open" | "closing" | "closed";

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Names a socket error as a close cause. Linux fails a connection with
 * ETIMEDOUT on two paths: keepalive probes unanswered while it is idle, or
 * sent data left unacknowledged (TCP_USER_TIMEOUT, else the retransmission
 * limit); probes stop while data waits for an ACK. `unacked` says which path,
 * from TCP_INFO: data was sent after the last ACK arrived. Where TCP_INFO
 * cannot be read (null), guess from whether we sent last and a user timeout is set.
 */
function causeOf(
  err: unknown,
  opts: {
    keepAlive: boolean;
    userTimeoutMs: number;
    unacked: boolean | null;
    sentLast: boolean;
    sinceAckMs: number | null;
  },
): CloseCause {
  if (!(err instanceof Deno.errors.TimedOut)) {
    // A write's EPIPE on a socket the kernel already gave up on: if sent data
    // has waited for an ACK past TCP_USER_TIMEOUT, that is what ended it.
    const gaveUp = err instanceof Deno.errors.BrokenPipe && opts.userTimeoutMs > 0 &&
      opts.unacked === true && opts.sinceAckMs !== null && opts.sinceAckMs >= opts.userTimeoutMs;
    return gaveUp ? "user-timeout" : "reset";
  }
  const unacked = opts.unacked ?? (opts.userTimeoutMs > 0 && opts.sentLast);
  return opts.keepAlive && !unacked ? "keepalive-timeout" : "user-timeout";
}

/**
 * One WebSocket connection. Read messages with `for await` or `onmessage`,
 * send with {@linkcode WebSocketConn.send}, end with {@linkcode WebSocketConn.close};
 * {@linkcode WebSocketConn.closed} tells how it ended.
 *
 * The closing handshake (RFC 6455 §7.1), as this class runs it:
 *
 * ```
 *   initiator                          responder
 *   close(code) ── Close(code) ───────▶ (reply with the same code,
 *                ◀────── Close(code) ──   1000 for an empty close)
 *   The server ends TCP once its close frame is written; a client waits for
 *   the server to end it. Every wait is bounded by closeTimeoutMs, after
 *   which TCP is ended anyway and `wasClean` is false if no answer came.
 *
 *   Failing (§7.1.7): a violation by the peer stops all processing of its
 *   data, sends Close(1002/1007/1009), half-closes, drops what still comes
 *   until the peer ends TCP, then closes; bounded by FAIL_FLUSH_TIMEOUT_MS.
 *   send-overflow (1008) and an exception in onmessage (1011) send their
 *   close frame and end TCP without the drain; a socket error ends at once
 *   with 1006 unless a close was already decided.
 * ```
 */
export class WebSocketConn implements AsyncIterable<Message> {
  /** The subprotocol agreed in the handshake, or null. */
  readonly protocol: string | null;
  /** Resolves once, when the connection has ended, with how it ended. */
  readonly closed: Promise<CloseInfo>;
  #onmessage: ((message: Message) => void) | null = null;
  #conn: Deno.Conn;
  #role: Role;
  #state: State = "open";
  #closeInfo: Deferred<CloseInfo> = deferred();
  #info: CloseInfo | null = null;
  #tcpEnded = false;

  // Options
  #maxMessageSize: number;
  #pingIntervalMs: number;
  #pongTimeoutMs: number;
  #closeTimeoutMs: number;
  #maxSendQueue: number;
  #keepAlive: boolean;
  #userTimeoutMs: number;
  #counters: Counters | null;

  // Reading
  #rbuf: Uint8Array;
  #rs = 0;
  #re = 0;
  #direct: Uint8Array | null = null;
  #directFilled = 0;
  #directOpcode = 0;
  #directFin = false;
  #directMasked = false;
  #maskKey = new Uint8Array(4);
  #fragOpcode = 0;
  #fragSize = 0;
  #fragText: string[] = [];
  #fragBinary: Uint8Array[] = [];
  /** No frame is processed any more; reads only watch for the end of TCP. */
  #discarding = false;
  // ignoreBOM: a leading U+FEFF is part of the message, not a byte-order mark.
  #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #streamDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #lastReceived = Date.now();

  // Iterator
  #queue: Message[] = [];
  #waiters: Deferred<IteratorResult<Message>>[] = [];
  #resume: Deferred<void> | null = null;

  // Writing
  #out: Outbox;
  #closeSent = false;
  #failed = false;
  #sentCode = NormalClosure;
  #sentReason = "";
  #localCause: CloseCause = "local-close";

  // Timers
  #leaveHeartbeat: () => void;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps a stream on which the handshake has completed, and starts reading.
   *
   * @param conn the TCP or TLS stream
   * @param options role, limits and heartbeat
   */
  constructor(conn: Deno.Conn, options: ConnOptions) {
    this.#conn = conn;
    this.#role = options.role;
    this.protocol = options.protocol ?? null;
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#pingIntervalMs = options.pingIntervalMs ?? 0;
    this.#pongTimeoutMs = options.pongTimeoutMs ?? 0;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#maxSendQueue = options.maxSendQueue ?? DEFAULT_MAX_SEND_QUEUE;
    this.#keepAlive = options.keepAlive ?? false;
    this.#userTimeoutMs = options.userTimeoutMs ?? 0;
    this.#counters = options.counters ?? null;
    this.closed = this.#closeInfo.promise;

    const initial = options.initial ?? new Uint8Array(0);
    this.#rbuf = new Uint8Array(Math.max(INITIAL_READ_BUFFER, initial.length));
    this.#rbuf.set(initial);
    this.#re = initial.length;

    this.#out = new Outbox(conn, this.#role === "client", (err) => {
      // EPIPE says only that the socket is dead; its real error (ETIMEDOUT,
      // ECONNRESET) went to the pending read, whose rejection may settle
      // just after ours. Let it name the cause first.
      if (err instanceof Deno.errors.BrokenPipe) {
        setTimeout(() => this.#socketFailed(err), BROKEN_PIPE_GRACE_MS);
      } else {
        this.#socketFailed(err);
      }
    });
    this.#leaveHeartbeat = joinHeartbeat(this, this.#pingIntervalMs, this.#pongTimeoutMs);
    // Let the owner set onmessage before the first frames are delivered.
    queueMicrotask(() => this.#readLoop());
  }

  /**
   * Called for each message, synchronously, as it is parsed. Setting it
   * replaces the async iterator; it is the fast path for servers. Messages
   * that arrived before it was set (e.g. in the same packet as the 101 of
   * dial()) are handed to it first, in a microtask.
   */
  get onmessage(): ((message: Message) => void) | null {
    return this.#onmessage;
  }

  set onmessage(handler: ((message: Message) => void) | null) {
    this.#onmessage = handler;
    if (handler && this.#queue.length > 0) {
      queueMicrotask(() => this.#drainQueue());
    }
  }

  /** Hands messages queued before onmessage was set to it, and resumes reading. */
  #drainQueue(): void {
    try {
      while (this.#onmessage && this.#queue.length > 0) {
        this.#onmessage(this.#queue.shift()!);
      }
    } catch (err) {
      this.#fail(
        InternalError,
        "internal error",
        "local-close",
        err instanceof Error ? err.message : String(err),
      );
    }
    if (this.#resume && this.#queue.length === 0) {
      const r = this.#resume;
      this.#resume = null;
      r.resolve();
    }
  }

  /** The address of the peer. */
  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  /** Bytes queued or being written, not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#out.buffered;
  }

  /** Whether the connection is still open for sending. */
  get isOpen(): boolean {
    return this.#state === "open";
  }

  // -------------------------------------------------------------------------
  // Sending

  /**
   * Sends a text (string) or binary (bytes) message. Sends are serialized and
   * coalesced; the promise resolves when the bytes are handed to the kernel.
   * Rejects if the connection is not open.
   */
  send(data: Message): Promise<void> {
    if (this.#state !== "open") {
      return Promise.reject(new Error("the WebSocket connection is not open"));
    }
    if (this.#overflowed()) {
      return Promise.reject(
        new Error("send queue overflow: the peer is not reading"),
      );
    }
    let bytes = data.length;
    if (typeof data === "string") bytes = this.#out.text(data);
    else this.#out.frame(Opcode.Binary, data);
    if (this.#counters) {
      this.#counters.messagesOut++;
      this.#counters.bytesOut += bytes;
    }
    return this.#out.pending();
  }

  /** Sends a ping with an optional payload of at most 125 bytes (RFC 6455 §5.5.2). */
  ping(payload: Uint8Array = new Uint8Array(0)): Promise<void> {
    if (payload.length > 125) {
      throw new RangeError("a ping payload is at most 125 bytes");
    }
    if (this.#state !== "open") {
      return Promise.reject(new Error("the WebSocket connection is not open"));
    }
    if (this.#overflowed()) {
      return Promise.reject(
        new Error("send queue overflow: the peer is not reading"),
      );
    }
    this.#out.frame(Opcode.Ping, payload);
    return this.#out.pending();
  }

  /**
   * Starts the closing handshake with `code` and `reason` (cut to 123 bytes),
   * and resolves when the connection has ended: when the peer has answered
   * and TCP is closed, or after closeTimeoutMs without an answer (then
   * `wasClean` is false). Messages that arrive meanwhile are dropped, as
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
    if (this.#state === "open") {
      this.#localCause = cause;
      this.#state = "closing";
      this.#sendClose(code, reason);
      this.#armCloseTimer();
    }
    return this.closed;
  }

  /**
   * The send-queue bound. We fail the connection rather than stop reading:
   * a paused reader would leave a peer that sends but never reads holding the
   * connection open forever, with both directions stuck and its pings
   * unanswered. Failing frees the memory at once and names why.
   */
  #overflowed(): boolean {
    if (this.bufferedAmount <= this.#maxSendQueue) return false;
    this.#fail(PolicyViolation, "send queue overflow", "send-overflow");
    return true;
  }

  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#sentCode = code;
    this.#sentReason = reason;
    this.#out.frame(Opcode.Close, buildClosePayload(code, reason));
    this.#out.pending();
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * Reads until TCP ends: each read fills the read buffer (or a large
   * payload's own buffer) and every complete frame in it is handled. A
   * violation by the peer fails the connection; an exception from our side
   * (an `onmessage` handler) fails it with 1011; a socket error ends it.
   * After a close frame or a failure, reads continue only to see TCP end.
   */
  async #readLoop(): Promise<void> {
    try {
      this.#parse();
      while (!this.#tcpEnded) {
        if (this.#resume && !this.#discarding) {
          await this.#resume.promise;
          this.#parse();
          continue;
        }
        const target = this.#readTarget();
        let n: number | null;
        try {
          n = await this.#conn.read(target);
        } catch (err) {
          return this.#socketFailed(err);
        }
        if (n === null) return this.#ended();
        // The connection may have been finished (a failed write, the close
        // timer, the heartbeat) while the read was pending: parse nothing more.
        if (this.#state === "closed") return;
        this.#lastReceived = Date.now();
        // The buffers may have been dropped while the read was pending.
        if (this.#discarding) continue;
        if (this.#direct) {
          this.#directFilled += n;
          if (this.#directFilled === this.#direct.length) this.#finishDirect();
          continue;
        }
        const filled = this.#re + n === this.#rbuf.length;
        this.#re += n;
        this.#parse();
        if (filled && this.#rbuf.length < MAX_READ_BUFFER && !this.#direct) {
          this.#makeRoom(this.#rbuf.length * 2 - (this.#re - this.#rs));
        }
      }
    } catch (err) {
      if (err instanceof ProtocolViolation) return this.#violation(err);
      this.#fail(
        InternalError,
        "internal error",
        "local-close",
        err instanceof Error ? err.message : String(err),
      );
    }
  }

  /** Where the next read goes: the large payload's buffer, or the read buffer's free end. */
  #readTarget(): Uint8Array {
    if (this.#discarding) return this.#rbuf;
    if (this.#direct) return this.#direct.subarray(this.#directFilled);
    if (this.#re === this.#rbuf.length) this.#makeRoom(MAX_HEADER_SIZE);
    return this.#rbuf.subarray(this.#re);
  }

  /** Ensures at least `free` bytes after the unparsed data, compacting or growing. */
  #makeRoom(free: number): void {
    const used = this.#re - this.#rs;
    if (this.#rbuf.length - this.#re >= free) return;
    if (this.#rbuf.length - used >= free) {
      this.#rbuf.copyWithin(0, this.#rs, this.#re);
    } else {
      let size = this.#rbuf.length * 2;
      while (size - used < free) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#rbuf.subarray(this.#rs, this.#re));
      this.#rbuf = grown;
    }
    this.#rs = 0;
    this.#re = used;
  }

  /**
   * Parses every complete frame in the read buffer (several per read, no
   * copies). A data frame's header is checked before its payload arrives, so
   * a bad sequence or an oversized message fails at once.
   */
  #parse(): void {
    const expectMasked = this.#role === "server";
    while (!this.#discarding && !this.#resume) {
      const h = readFrameHeader(this.#rbuf, this.#rs, this.#re, expectMasked);
      if (!h) break;
      if (!isControl(h.opcode)) this.#checkDataHeader(h.opcode, h.payloadLength);
      const total = h.headerLength + h.payloadLength;
      const start = this.#rs + h.headerLength;
      if (this.#re - this.#rs >= total) {
        const end = start + h.payloadLength;
        if (h.masked) unmask(this.#rbuf, start, end, this.#rbuf, h.maskOffset);
        this.#rs += total;
        this.#frame(h.opcode, h.fin, this.#rbuf.subarray(start, end), false);
        continue;
      }
      if (h.payloadLength > DIRECT_PAYLOAD_THRESHOLD) {
        // A large payload: read the rest straight into a buffer of its own.
        const have = this.#re - start;
        this.#direct = new Uint8Array(h.payloadLength);
        this.#direct.set(this.#rbuf.subarray(start, this.#re));
        this.#directFilled = have;
        this.#directOpcode = h.opcode;
        this.#directFin = h.fin;
        this.#directMasked = h.masked;
        if (h.masked) {
          this.#maskKey.set(
            this.#rbuf.subarray(h.maskOffset, h.maskOffset + 4),
          );
        }
        this.#rs = this.#re = 0;
        return;
      }
      this.#makeRoom(total - (this.#re - this.#rs));
      break;
    }
    if (this.#rs === this.#re) this.#rs = this.#re = 0;
  }

  #finishDirect(): void {
    const payload = this.#direct!;
    this.#direct = null;
    if (this.#directMasked) unmask(payload, 0, payload.length, this.#maskKey);
    this.#frame(this.#directOpcode, this.#directFin, payload, true);
    this.#parse();
  }

  /** Checks a data frame against the fragmentation rules (RFC 6455 §5.4) and the size limit. */
  #checkDataHeader(opcode: number, length: number): void {
    if (opcode === Opcode.Continuation) {
      if (this.#fragOpcode === 0) {
        throw new ProtocolViolation(
          ProtocolError,
          "continuation frame with nothing to continue",
        );
      }
    } else if (this.#fragOpcode !== 0) {
      throw new ProtocolViolation(
        ProtocolError,
        "new data frame inside a fragmented message",
      );
    }
    const size = (opcode === Opcode.Continuation ? this.#fragSize : 0) + length;
    if (size > this.#maxMessageSize) {
      throw new ProtocolViolation(
        MessageTooBig,
        `message of ${size} bytes exceeds the limit of ${this.#maxMessageSize}`,
      );
    }
  }

  /**
   * Handles one complete frame whose header passed the checks. `owned` says
   * whether `payload` is ours to keep; otherwise it is a view into the read
   * buffer and must be copied to be kept.
   */
  #frame(
    opcode: number,
    fin: boolean,
    payload: Uint8Array,
    owned: boolean,
  ): void {
    switch (opcode) {
      case Opcode.Text:
      case Opcode.Binary:
        if (fin) {
          if (this.#counters) {
            this.#counters.messagesIn++;
            this.#counters.bytesIn += payload.length;
          }
          this.#deliver(
            opcode === Opcode.Text ? this.#decode(payload) : owned ? payload : payload.slice(),
          );
          return;
        }
        this.#fragOpcode = opcode;
        this.#fragSize = 0;
        this.#fragment(payload, false, owned);
        return;
      case Opcode.Continuation:
        this.#fragment(payload, fin, owned);
        return;
      case Opcode.Ping:
        // Answer while open; after our close frame nothing more is sent (§5.5.1).
        if (this.#state === "open" && !this.#overflowed()) {
          this.#out.frame(Opcode.Pong, payload);
          this.#out.pending();
        }
        return;
      case Opcode.Pong:
        return; // Any frame counts as a sign of life; an unsolicited pong is ignored.
      case Opcode.Close:
        this.#peerClose(payload);
        return;
    }
  }

  #decode(payload: Uint8Array): string {
    try {
      return this.#decoder.decode(payload);
    } catch {
      throw new ProtocolViolation(1007, "invalid UTF-8 in a text message");
    }
  }

  #fragment(payload: Uint8Array, fin: boolean, owned: boolean): void {
    this.#fragSize += payload.length;
    if (this.#fragOpcode === Opcode.Text) {
      try {
        // Streaming decode fails as soon as the bytes show invalid UTF-8.
        this.#fragText.push(
          this.#streamDecoder.decode(payload, { stream: !fin }),
        );
      } catch {
        this.#streamDecoder = new TextDecoder("utf-8", { fatal: true });
        throw new ProtocolViolation(1007, "invalid UTF-8 in a text message");
      }
    } else {
      this.#fragBinary.push(owned ? payload : payload.slice());
    }
    if (!fin) return;
    let message: Message;
    if (this.#fragOpcode === Opcode.Text) {
      message = this.#fragText.join("");
    } else {
      message = new Uint8Array(this.#fragSize);
      let off = 0;
      for (const part of this.#fragBinary) {
        message.set(part, off);
        off += part.length;
      }
    }
    if (this.#counters) {
      this.#counters.messagesIn++;
      this.#counters.bytesIn += this.#fragSize;
    }
    this.#fragOpcode = 0;
    this.#fragSize = 0;
    this.#fragText = [];
    this.#fragBinary = [];
    this.#deliver(message);
  }

  #deliver(message: Message): void {
    // After our close frame, messages are dropped: the application asked to
    // stop (browsers do the same in the CLOSING state).
    if (this.#closeSent) return;
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
    if (this.#queue.length >= MAX_QUEUED_MESSAGES && !this.#resume) {
      this.#resume = deferred(); // Backpressure: stop reading until the consumer catches up.
    }
  }

  /**
   * Yields each message until the connection ends; messages that arrived
   * before the end are still yielded. Leaving the loop early (`break`) does
   * not close the connection. While more than 64 messages wait unread,
   * reading pauses (TCP flow control then slows the peer).
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => {
        const value = this.#queue.shift();
        if (this.#resume && this.#queue.length < MAX_QUEUED_MESSAGES / 2) {
          const r = this.#resume;
          this.#resume = null;
          r.resolve();
        }
        if (value !== undefined) return Promise.resolve({ value, done: false });
        if (this.#state === "closed") {
          return Promise.resolve({ value: undefined, done: true });
        }
        const waiter = deferred<IteratorResult<Message>>();
        this.#waiters.push(waiter);
        return waiter.promise;
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  // -------------------------------------------------------------------------
  // Closing

  #peerClose(payload: Uint8Array): void {
    const { code, reason } = parseClosePayload(payload);
    if (this.#closeSent) {
      // The answer to our close: the handshake is complete (§7.1.2).
      this.#info = {
        code: this.#sentCode,
        reason: this.#sentReason,
        cause: this.#localCause,
        wasClean: true,
      };
    } else {
      // Echo the code (§5.5.1); an empty close is answered with 1000.
      this.#state = "closing";
      this.#sendClose(code === NoStatusReceived ? NormalClosure : code, "");
      this.#info = { code, reason, cause: "peer-close", wasClean: true };
    }
    this.#stopReading();
    // Each wait below is bounded: the close timer ends TCP in any case.
    this.#armCloseTimer();
    if (this.#role === "server") {
      // The server ends TCP first (§7.1.1), once its close frame is written.
      this.#out.flushed().then(() => this.#finish(this.#info!));
    }
    // A client waits for the server to end TCP: #readLoop sees the EOF.
  }

  /** Drops what is buffered; from now on reads only watch for the end of TCP. */
  #stopReading(): void {
    this.#discarding = true;
    this.#rs = this.#re = 0;
    this.#direct = null;
    this.#resume?.resolve();
    this.#resume = null;
  }

  /**
   * Bounds the closing handshake: after `ms` TCP is ended whatever the state.
   * A close frame of ours still unwritten makes the end unclean.
   */
  #armCloseTimer(ms = this.#closeTimeoutMs): void {
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => {
      const info = this.#info;
      if (info) {
        this.#finish({ ...info, wasClean: info.wasClean && this.bufferedAmount === 0 });
        return;
      }
      this.#finish({
        code: AbnormalClosure,
        reason: "",
        cause: this.#localCause,
        wasClean: false,
        error: "the peer did not answer the close frame in time",
      });
    }, ms);
  }

  /** TCP ended (read returned EOF). */
  #ended(): void {
    if (this.#info) return this.#finish(this.#info);
    this.#finish({
      code: AbnormalClosure,
      reason: "",
      cause: this.#state === "closing" ? this.#localCause : "eof",
      wasClean: false,
      error: "TCP ended without a close frame",
    });
  }

  #violation(err: ProtocolViolation): void {
    const cause: CloseCause = err.code === MessageTooBig ? "message-too-big" : "protocol-error";
    this.#fail(err.code, err.message, cause, undefined, true);
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): stop processing the peer's data,
   * send Close(code) unless a close frame went already, then end TCP once it
   * is written (at most FAIL_FLUSH_TIMEOUT_MS later). The first failure
   * decides the CloseInfo; later ones change nothing.
   */
  #fail(code: number, reason: string, cause: CloseCause, error?: string, drain = false): void {
    if (this.#state === "closed" || this.#failed) return;
    this.#failed = true;
    this.#state = "closing";
    this.#stopReading();
    if (!this.#closeSent) this.#sendClose(code, reason);
    const info: CloseInfo = { code, reason, cause, wasClean: false };
    if (error !== undefined) info.error = error;
    this.#info = info;
    this.#armCloseTimer(Math.min(FAIL_FLUSH_TIMEOUT_MS, this.#closeTimeoutMs));
    this.#out.flushed().then(() => drain ? this.#linger() : undefined).then(() =>
      this.#finish(info)
    );
  }

  /**
   * After a violation stopped the reader: half-closes, then reads and drops
   * what the peer still sends until it ends TCP (bounded by the close timer).
   * Closing a socket with unread data sends RST, and a peer still sending
   * would lose our close frame: Deno's WebSocket then reports code 0.
   */
  async #linger(): Promise<void> {
    if (this.#tcpEnded) return;
    try {
      await this.#conn.closeWrite();
      const sink = new Uint8Array(16 * 1024);
      while (this.#state !== "closed" && await this.#conn.read(sink) !== null) {
        // Drop it.
      }
    } catch {
      // The peer is gone: nothing is left to protect.
    }
  }

  /**
   * The socket failed (reset, timeout…) while reading or writing. A close
   * already decided (a failure, or a completed handshake) keeps its info;
   * otherwise no close frame can be exchanged any more: 1006.
   */
  #socketFailed(err: unknown): void {
    if (this.#state === "closed") return;
    if (this.#info) return this.#finish(this.#info);
    // TCP_INFO is read before #finish closes the conn; null where unavailable.
    const times = readTcpTimes(this.#conn);
    const cause = causeOf(err, {
      keepAlive: this.#keepAlive,
      userTimeoutMs: this.#userTimeoutMs,
      unacked: times === null ? null : times.lastDataSentMs < times.lastAckRecvMs,
      sentLast: this.#out.lastSent > this.#lastReceived,
      sinceAckMs: times === null ? null : times.lastAckRecvMs,
    });
    this.#finish({
      code: AbnormalClosure,
      reason: "",
      cause,
      wasClean: false,
      error: err instanceof Error ? err.message : String(err),
    });
  }

  /** Ends everything once: timers, TCP, waiters, and the `closed` promise. */
  #finish(info: CloseInfo): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#info = info;
    this.#leaveHeartbeat();
    clearTimeout(this.#closeTimer);
    if (!this.#tcpEnded) {
      this.#tcpEnded = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
    this.#out.close();
    this.#resume?.resolve();
    for (const w of this.#waiters) w.resolve({ value: undefined, done: true });
    this.#waiters = [];
    this.#closeInfo.resolve(info);
  }

  // -------------------------------------------------------------------------
  // Heartbeat

  /** When a frame last arrived (ms since the epoch); the heartbeat reads it. */
  get lastReceived(): number {
    return this.#lastReceived;
  }

  /** Called by the heartbeat: time to ping. */
  heartbeatPing(): void {
    if (this.#state === "open") this.ping().catch(() => {});
  }

  /** Called by the heartbeat: nothing arrived for the pong timeout. */
  heartbeatTimeout(quietMs: number): void {
    // The peer is unresponsive: a close frame would wait for nobody, so end
    // TCP at once.
    this.#finish({
      code: AbnormalClosure,
      reason: "",
      cause: "pong-timeout",
      wasClean: false,
      error: `no frame received for ${quietMs}ms (pong timeout ${this.#pongTimeoutMs}ms)`,
    });
  }

  /** Ends the connection at once for an internal error, with close 1011. */
  abort(reason: string): void {
    this.#fail(InternalError, reason, "local-close");
  }
}
