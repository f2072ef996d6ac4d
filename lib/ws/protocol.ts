/**
 * The WebSocket protocol (RFC 6455 §5–§7) as a state machine that never
 * touches a socket, a timer or a clock, after python-websockets' `Protocol`:
 * bytes go in, events come out, and bytes to send come out.
 *
 * ```text
 *          close() · fail() · the peer's close frame
 *   OPEN ─────────────────────────────────────────▶ CLOSING
 *     │                                               │
 *     └────────── receiveEof() · finish() ────────────┴──▶ CLOSED
 * ```
 *
 * - Input: the owner reads into {@linkcode Protocol.readTarget}, reports
 *   the count with {@linkcode Protocol.commit}, then calls
 *   {@linkcode Protocol.process}, which hands each event to the handler
 *   (messages, pings, pongs) and answers pings and close frames itself.
 * - Output: frames queue as bytes; the owner takes them with
 *   {@linkcode Protocol.takeOutput} and reports writes with
 *   {@linkcode Protocol.written}.
 * - Flow control: `process()` consumes no input while more than the
 *   high-water mark of output waits to be written, or while the owner holds
 *   input (its consumer is full); and it stops after a turn's budget of work
 *   so that the owner can let other connections run.
 * - Errors: every violation by the peer goes down one path,
 *   {@linkcode Protocol.fail}: stop reading, queue a close frame with the
 *   code after what was queued before, and record why.
 *
 * @module
 */

import {
  AbnormalClosure,
  buildClosePayload,
  type CloseCause,
  type CloseInfo,
  isValidWireCode,
  MessageTooBig,
  NormalClosure,
  NoStatusReceived,
  parseClosePayload,
} from "./close.ts";
import { ProtocolViolation } from "./errors.ts";
import { MAX_CONTROL_PAYLOAD, Opcode } from "./frame.ts";
import { FrameReader, type Message, ReadEvent } from "./read.ts";
import { formatDeflateParams } from "./deflate.ts";
import type { PerMessageDeflate } from "./compression.ts";
import { Outgoing } from "./outgoing.ts";
import { Progress, type Role, State, type Traffic } from "./state.ts";

export { Progress, type Role, State, type Traffic } from "./state.ts";

export type { Message } from "./read.ts";

/** Output bytes waiting to be written above which no more input is consumed. */
export const DEFAULT_SEND_HIGH_WATER = 1024 * 1024;

/**
 * Work one connection may do before {@linkcode Protocol.process} yields: in
 * bytes received, with each frame counted as {@linkcode FRAME_COST} more.
 */
export const DEFAULT_TURN_BUDGET = 256 * 1024;

/** What a byte compressed for a send costs in the turn budget. */
const DEFLATE_COST = 3;

/** What a frame costs beyond its bytes, in the turn budget (parsing, delivery, answer). */
const FRAME_COST = 1024;

/** Receives what the peer sends, synchronously, as {@linkcode Protocol.process} parses it. */
export interface ProtocolHandler {
  /** A complete message (dropped, not handed over, once our close frame went). */
  message(message: Message): void;
  /** A ping; the pong is already queued. */
  ping?(payload: Uint8Array): void;
  /** A pong (the payload is a view, valid during the call). */
  pong?(payload: Uint8Array): void;
}

/** Limits and flow control of a {@linkcode Protocol}. */
export interface ProtocolOptions {
  /** `server` expects masked frames and sends unmasked ones; `client` the reverse. */
  role: Role;
  /** Largest message in bytes (frame headers count, see `read.ts`). */
  maxMessageSize?: number;
  /** Most frames per message. */
  maxFragments?: number;
  /** Output bytes above which input waits (flow control). */
  sendHighWater?: number;
  /** Work per turn, see {@linkcode DEFAULT_TURN_BUDGET}. */
  turnBudget?: number;
  /** permessage-deflate, when the handshake agreed it (RFC 7692). */
  deflate?: PerMessageDeflate | null;
  /**
   * Answer pings with pongs (default true, as RFC 6455 §5.5.2 requires).
   * False only to play a broken peer, e.g. to test someone's heartbeat.
   */
  autoPong?: boolean;
}

const EMPTY = new Uint8Array(0);

/** One WebSocket connection's protocol state, without I/O. */
export class Protocol {
  /** Which end this is. */
  readonly role: Role;
  /** This connection's traffic so far. */
  readonly traffic: Traffic = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };
  /** Set by the owner while it cannot take more messages: `process()` pauses. */
  holdInput = false;

  #state: State = State.Open;
  #reader: FrameReader;
  #out: Outgoing;
  #handler: ProtocolHandler;
  #highWater: number;
  #turnBudget: number;
  #autoPong: boolean;
  #deflate: PerMessageDeflate | null;
  #cost = 0;
  #closeSent = false;
  #closeReceived = false;
  #failed = false;
  #sentCode = NormalClosure;
  #sentReason = "";
  #localCause: CloseCause = "local-close";
  #info: CloseInfo | null = null;

  /**
   * A protocol in the OPEN state (the opening handshake is done elsewhere).
   *
   * @param options role, limits and flow control
   * @param handler receives messages, pings and pongs
   */
  constructor(options: ProtocolOptions, handler: ProtocolHandler) {
    this.role = options.role;
    this.#handler = handler;
    this.#deflate = options.deflate ?? null;
    this.#reader = new FrameReader({
      expectMasked: options.role === "server",
      maxMessageSize: options.maxMessageSize,
      maxFragments: options.maxFragments,
      deflate: this.#deflate,
    });
    this.#out = new Outgoing(options.role === "client", this.#deflate);
    this.#highWater = options.sendHighWater ?? DEFAULT_SEND_HIGH_WATER;
    this.#turnBudget = options.turnBudget ?? DEFAULT_TURN_BUDGET;
    this.#autoPong = options.autoPong ?? true;
  }

  /** The current state. */
  get state(): State {
    return this.#state;
  }

  /** Whether our close frame is queued or sent. */
  get closeSent(): boolean {
    return this.#closeSent;
  }

  /** Whether the peer's close frame arrived. */
  get closeReceived(): boolean {
    return this.#closeReceived;
  }

  /** How the connection ends, as decided so far (null while nothing is). */
  get info(): CloseInfo | null {
    return this.#info;
  }

  /** Output bytes queued or being written, and those of messages waiting to be compressed. */
  get bufferedAmount(): number {
    return this.#out.buffered;
  }

  /** Bytes ever queued for output, a position in the outgoing stream. */
  get queuedTotal(): number {
    return this.#out.queuedTotal;
  }

  /** Bytes ever written, a position in the outgoing stream. */
  get writtenTotal(): number {
    return this.#out.writtenTotal;
  }

  /** Memory held for this connection: read buffer, partial message, output. */
  get held(): number {
    return this.#reader.held + this.#out.held + (this.#deflate?.held ?? 0);
  }

  /** The extensions agreed in the handshake, as a header value ("" for none). */
  get extensions(): string {
    return this.#deflate ? formatDeflateParams(this.#deflate.params) : "";
  }

  /** The largest message accepted. */
  get maxMessageSize(): number {
    return this.#reader.maxMessageSize;
  }

  // -------------------------------------------------------------------------
  // Input

  /** Where the next read should put its bytes (never empty). */
  readTarget(): Uint8Array {
    return this.#reader.readTarget();
  }

  /** Records that `n` bytes were read into the last {@linkcode readTarget}. */
  commit(n: number): void {
    this.#reader.commit(n);
    this.#cost += n;
  }

  /** Takes bytes as if read (the ones that came with the handshake; tests). */
  receive(bytes: Uint8Array): void {
    if (this.#state === State.Closed) return;
    try {
      this.#reader.feed(bytes);
    } catch (err) {
      this.#violation(err);
    }
    this.#cost += bytes.length;
  }

  /**
   * Handles every complete frame received, until more input is needed, the
   * output passes the high-water mark (or input is held), or the turn's
   * budget is spent. A violation by the peer fails the connection here; an
   * exception thrown by the handler propagates to the caller.
   */
  process(): number {
    const reader = this.#reader;
    for (;;) {
      if (this.#state === State.Closed) return Progress.NeedInput;
      if (this.holdInput || this.#out.buffered >= this.#highWater) return Progress.Paused;
      let event: number;
      try {
        event = reader.next();
      } catch (err) {
        this.#violation(err);
        return Progress.NeedInput;
      }
      if (event === ReadEvent.NeedInput) {
        if (this.#cost < this.#turnBudget) return Progress.NeedInput;
        this.#cost = 0;
        return Progress.Yield;
      }
      if (event === ReadEvent.Inflating) {
        // A slice of a compressed message: its output counts; waiting for a slot yields.
        this.#cost += reader.work + FRAME_COST;
        if (reader.work === 0 || this.#cost >= this.#turnBudget) {
          this.#cost = 0;
          return Progress.Yield;
        }
        continue;
      }
      this.#cost += FRAME_COST + reader.work;
      switch (event) {
        case ReadEvent.Message: {
          const message = reader.message;
          reader.message = EMPTY;
          this.traffic.messagesIn++;
          this.traffic.bytesIn += reader.messageSize;
          // After our close frame the application asked to stop (browsers drop them too).
          if (!this.#closeSent) this.#handler.message(message);
          break;
        }
        case ReadEvent.Ping:
          // Answer while open; after our close frame nothing more is sent (§5.5.1).
          if (this.#state === State.Open && this.#autoPong) {
            this.#out.control(Opcode.Pong, reader.control);
          }
          this.#handler.ping?.(reader.control);
          break;
        case ReadEvent.Pong:
          this.#handler.pong?.(reader.control);
          break;
        case ReadEvent.Close:
          this.#peerClose(reader.control);
          break;
      }
      if (this.#cost >= this.#turnBudget) {
        this.#cost = 0;
        return Progress.Yield;
      }
    }
  }

  /** TCP ended (EOF): the connection is finished; returns how it ended. */
  receiveEof(): CloseInfo {
    if (this.#state === State.Closed) return this.#info!;
    return this.finish(
      this.#info ?? (this.#closeSent
        ? {
          code: AbnormalClosure,
          reason: "",
          cause: this.#localCause,
          clean: false,
          error: "TCP ended before the peer answered our close frame",
        }
        : {
          code: AbnormalClosure,
          reason: "",
          cause: "eof",
          clean: false,
          error: "TCP ended without a close frame",
        }),
    );
  }

  // -------------------------------------------------------------------------
  // Output

  /**
   * Queues a text (string) or binary (bytes) message; returns its payload
   * size. A large message that goes compressed, and what is sent after it,
   * waits to be compressed a slice at a time by {@linkcode takeOutput}
   * (see `outgoing.ts`; {@linkcode lastDeferred}).
   */
  send(data: Message): number {
    this.#mustBeOpen();
    const n = this.#out.message(data);
    // Compressing costs the turn more than its bytes (measured: deflate at
    // level 6 takes 2-4 times as long per byte as inflate or parsing).
    this.#cost += this.#out.compressed * DEFLATE_COST;
    this.traffic.messagesOut++;
    this.traffic.bytesOut += n;
    return n;
  }

  /** Queues a ping with `payload` (at most 125 bytes, RFC 6455 §5.5.2; empty by default). */
  ping(payload?: Uint8Array): void {
    this.#heartbeat(Opcode.Ping, "ping", payload);
  }

  /** Queues an unsolicited pong (RFC 6455 §5.5.3: a unidirectional heartbeat; empty by default). */
  pong(payload?: Uint8Array): void {
    this.#heartbeat(Opcode.Pong, "pong", payload);
  }

  /**
   * Starts the closing handshake with `code` (1000 by default) and `reason`
   * ("" by default, cut to 123 bytes), naming `cause` (`local-close` by
   * default) for the record. Nothing happens unless open. Throws a
   * RangeError for a code that may not be sent.
   */
  close(code?: number, reason?: string, cause?: CloseCause): void {
    if (code === undefined) code = NormalClosure;
    if (reason === undefined) reason = "";
    if (cause === undefined) cause = "local-close";
    if (!Number.isInteger(code) || !isValidWireCode(code)) {
      throw new RangeError(`close code ${code} may not be sent`);
    }
    if (this.#state !== State.Open) return;
    this.#state = State.Closing;
    this.#localCause = cause;
    this.#sendClose(code, reason);
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): stop processing input, queue
   * Close(code) after what is already queued unless a close frame went
   * already, and record the failure. The first failure decides; later ones
   * change nothing.
   */
  fail(code: number, reason: string, cause: CloseCause, error?: string): void {
    if (this.#failed || this.#state === State.Closed) return;
    this.#failed = true;
    this.#state = State.Closing;
    this.#reader.discard();
    if (!this.#closeSent) this.#sendClose(code, reason);
    const info: CloseInfo = { code, reason, cause, clean: false };
    if (error !== undefined) info.error = error;
    this.#info = info;
  }

  /**
   * Drops the output not yet taken, to free its memory (a peer that does not
   * read, an eviction); call before {@linkcode fail} so that the close frame
   * stays. What was taken is still written whole, frame by frame.
   */
  dropOutput(): void {
    this.#out.drop();
  }

  /** Whether the connection was failed (rather than closed by a handshake). */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * The number of the last message {@linkcode send} deferred (0: none), and
   * of the last deferred message now compressed and queued: a deferred
   * binary payload is read from the caller's bytes until then.
   */
  get lastDeferred(): number {
    return this.#out.lastDeferred;
  }

  /** See {@linkcode lastDeferred}. */
  get deferredDone(): number {
    return this.#out.deferredDone;
  }

  /** Whether messages wait to be compressed: call {@linkcode takeOutput} again, after letting others run. */
  get outputPending(): boolean {
    return this.#out.pending;
  }

  /**
   * Hands out the bytes to write, in order, or null when there are none
   * (now: with {@linkcode outputPending}, more may come at the next call).
   * Compresses at most one slice of a deferred message.
   */
  takeOutput(): Uint8Array[] | null {
    return this.#out.take();
  }

  /** Reports `n` more bytes of the taken output as written. */
  written(n: number): void {
    this.#out.written(n);
  }

  /** Ends the connection with `info` (the owner's verdict, e.g. a socket error). */
  finish(info: CloseInfo): CloseInfo {
    if (this.#state === State.Closed) return this.#info!;
    this.#state = State.Closed;
    this.#info = info;
    this.#reader.discard();
    this.#out.drop();
    this.#deflate?.close();
    return info;
  }

  // -------------------------------------------------------------------------

  /** Queues a ping or pong of ours; a RangeError for a payload over 125 bytes. */
  #heartbeat(opcode: number, name: string, payload: Uint8Array = EMPTY): void {
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`a ${name} payload is at most 125 bytes`);
    }
    this.#mustBeOpen();
    this.#out.control(opcode, payload);
  }

  #mustBeOpen(): void {
    if (this.#state !== State.Open) throw new Error("the WebSocket connection is not open");
  }

  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#sentCode = code;
    this.#sentReason = reason;
    this.#out.close(buildClosePayload(code, reason), this.#failed);
  }

  #peerClose(payload: Uint8Array): void {
    let close: { code: number; reason: string };
    try {
      close = parseClosePayload(payload);
    } catch (err) {
      return this.#violation(err);
    }
    this.#closeReceived = true;
    this.#reader.discard(); // nothing is read after a close frame (§5.5.1)
    if (this.#closeSent) {
      // The answer to our close: the handshake is complete (§7.1.2).
      this.#info = {
        code: this.#sentCode,
        reason: this.#sentReason,
        cause: this.#localCause,
        clean: true,
      };
      return;
    }
    // Echo the code (§5.5.1); an empty close is answered with 1000.
    this.#state = State.Closing;
    this.#sendClose(close.code === NoStatusReceived ? NormalClosure : close.code, "");
    this.#info = { code: close.code, reason: close.reason, cause: "peer-close", clean: true };
  }

  /** The one path for a peer's violation: fail with its code and reason. */
  #violation(err: unknown): void {
    if (!(err instanceof ProtocolViolation)) throw err;
    const cause: CloseCause = err.code === MessageTooBig ? "message-too-big" : "protocol-error";
    this.fail(err.code, err.message, cause);
  }
}
