/**
 * A WebSocket connection over an open stream (TCP or TLS), as the
 * application sees it: {@linkcode WebSocketConn}. Its machinery (the I/O
 * around a {@linkcode Protocol}, the timers, the hooks of the shared
 * watchdog and memory budget) is a private `Link` (`link.ts`), so that the
 * class shows only what an application uses.
 *
 * The handshake is done elsewhere (`serve()`'s `upgrade()`, `dial()`);
 * this starts where the first frame may arrive.
 *
 * @module
 */

import type { CloseCause, CloseInfo } from "./close.ts";
import { type Message, type Protocol, type Role, State, type Traffic } from "./protocol.ts";
import { Link } from "./link.ts";
import type { ConnOptions } from "./options.ts";
import type { PingStats } from "./pings.ts";

export type { Message, Role, Traffic };
export type { CloseCause, CloseInfo };
export type { PingStats };
export {
  type ConnectionOptions,
  type ConnOptions,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  type ErrorClassifier,
} from "./options.ts";

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
 *   the server to end it. Every wait is bounded by `closeTimeout`, after
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
export class WebSocketConn implements AsyncIterable<Message> {
  /** The subprotocol agreed in the handshake, or null. */
  readonly protocol: string | null;
  /** Resolves once, when the connection has ended, with how it ended. */
  readonly closed: Promise<CloseInfo>;
  /** Heartbeat figures: pings sent and answered, round trips. */
  readonly pings: PingStats;
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
  /**
   * Called for each message, synchronously, as it is parsed. Setting it
   * replaces the async iterator; it is the fast path for servers. Messages
   * that arrived before it was set are handed to it first, in a microtask.
   */
  declare onmessage: ((message: Message) => void) | null;

  static {
    // An accessor, so that setting it can hand over the messages queued
    // before; declared above as a field, since `deno doc` leaves get/set
    // pairs out of its listing.
    Object.defineProperty(this.prototype, "onmessage", {
      configurable: true, // as a class's own accessors are
      get(this: WebSocketConn) {
        return this.#link.inbox.handler;
      },
      set(this: WebSocketConn, handler: ((message: Message) => void) | null) {
        this.#link.inbox.setHandler(handler);
      },
    });
  }

  #link: Link;
  #core: Protocol;

  /**
   * Wraps a stream on which the handshake has completed, and starts reading.
   *
   * @param conn the TCP or TLS stream
   * @param options role, limits, timers and budget
   */
  constructor(conn: Deno.Conn, options: ConnOptions) {
    if (
      (options.pingInterval ?? 0) < 0 || (options.pongTimeout ?? 0) < 0 ||
      (options.stallTimeout ?? 0) < 0
    ) {
      throw new RangeError("timer periods are 0 (off) or positive milliseconds");
    }
    this.protocol = options.protocol ?? null;
    this.#link = new Link(this, conn, options);
    this.#core = this.#link.core;
    this.closed = this.#link.closed;
    this.pings = this.#link.pings.stats;
  }

  /** The address of the peer. */
  get remoteAddr(): Deno.Addr {
    return this.#link.remoteAddr;
  }

  /** Bytes queued or being written, not yet taken by the kernel. */
  get bufferedAmount(): number {
    return this.#core.bufferedAmount;
  }

  /** Whether the connection is still open for sending. */
  get isOpen(): boolean {
    return this.#core.state === State.Open;
  }

  /** The state: open, closing or closed. */
  get state(): State {
    return this.#core.state;
  }

  /** The extensions agreed in the handshake, as a header value ("" for none). */
  get extensions(): string {
    return this.#core.extensions;
  }

  /** Messages and bytes each way so far. */
  get traffic(): Traffic {
    return this.#core.traffic;
  }

  /** When a frame last arrived (ms on the connection's clock). */
  get lastFrameAt(): number {
    return this.#link.lastFrameAt;
  }

  /**
   * Sends a text (string) or binary (bytes) message. The promise honours
   * backpressure: it resolves at once while less than the high-water mark is
   * queued, and otherwise once the queue has drained to a quarter of it. A
   * binary payload of 64 KiB or more is sent from your bytes without a copy
   * (on the server side): keep them unchanged until the promise resolves.
   * Rejects when the connection is not open.
   */
  send(data: Message): Promise<void> {
    return this.#link.out.send(data);
  }

  /**
   * Sends a ping and resolves with the round trip in ms when its pong comes
   * back (RFC 6455 §5.5.2). `payload` (at most 125 bytes) defaults to a
   * sequence number; the pong is matched by it. Rejects when the
   * connection ends first; throws a RangeError for a payload too long.
   */
  ping(payload?: Uint8Array): Promise<number> {
    return this.#link.pings.ping(payload);
  }

  /**
   * Starts the closing handshake with `code` (1000 by default) and `reason`
   * ("" by default, cut to 123 bytes), and resolves when the connection has
   * ended: when the peer has answered and TCP is closed, or after
   * `closeTimeout` without an answer (then `clean` is false). Messages that
   * arrive meanwhile are dropped, as browsers do. `cause` names why, for
   * logs (`local-close` by default). Throws a RangeError for a code that
   * may not be sent (1005, 1006, 1015, outside 1000–4999…). A connection
   * no longer open sends nothing more: the promise is {@linkcode closed}.
   */
  close(code?: number, reason?: string, cause?: CloseCause): Promise<CloseInfo> {
    return this.#link.close(code, reason, cause);
  }

  /**
   * Gives up on the connection: what is queued and not yet being written is
   * dropped (its memory freed), a close frame with `code` (1011 by default)
   * and `reason` is sent, nothing more is read, and TCP ends shortly after,
   * whatever the peer does. `cause` names why, for logs (`local-close` by
   * default).
   */
  abort(reason: string, code?: number, cause?: CloseCause): void {
    this.#link.abort(reason, code, cause);
  }

  /**
   * Stops reading and writing while keeping the socket open, as a hung
   * program would (its kernel still answers TCP keepalive probes): for
   * fault injection. The heartbeat stops too; only the peer, or
   * {@linkcode terminate}, ends the connection now.
   */
  freeze(): void {
    this.#link.freeze();
  }

  /**
   * Ends TCP now, without a closing handshake. If no close was decided
   * before, {@linkcode closed} resolves with code 1006, cause
   * `local-close`, and `error` (default "terminated") as its `error`;
   * otherwise with what was decided.
   */
  terminate(error?: string): void {
    this.#link.terminate(error);
  }

  /**
   * Yields each message until the connection ends; messages that arrived
   * before the end are still yielded. Leaving the loop early (`break`) does
   * not close the connection. While 64 messages or 1 MiB wait unread,
   * reading pauses (TCP flow control then slows the peer).
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    const inbox = this.#link.inbox;
    return {
      next: () => inbox.next(),
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}
