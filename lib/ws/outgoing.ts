/**
 * What a connection sends, in order, without I/O: data frames, control
 * frames and the close frame go into a {@linkcode SendQueue}, except that a
 * message too large to compress at once is compressed a slice at a time
 * (`compression.ts`'s {@linkcode Deflation}), and every data or close frame
 * queued after it waits behind it, so that its fragments stay together.
 * Pings and pongs never wait: RFC 6455 §5.4 lets control frames go between
 * the fragments of a message.
 *
 * ```text
 *   send(big)   ─▶ deferred: [big ▸ slices]      ┐  take() compresses one
 *   send(small) ─▶ deferred: [big, small]         │  slice per call and moves
 *   ping()      ─▶ the queue at once              │  what is ready to the queue
 *   close()     ─▶ deferred: [big, small, close]  ┘
 * ```
 *
 * @module
 */

import { DEFLATE_SLICE, type Deflation, deflation, type PerMessageDeflate } from "./compression.ts";
import { Opcode } from "./frame.ts";
import type { Message } from "./read.ts";
import { SendQueue, ZERO_COPY_PAYLOAD } from "./write.ts";

const encoder = new TextEncoder();

/** A data message or the close frame, waiting behind a message compressed in slices. */
interface Deferred {
  /** Its opcode (Text, Binary or Close). */
  opcode: number;
  /** Its payload; text for a text message sent uncompressed. */
  data: Uint8Array | string;
  /** Whether it goes compressed. */
  compress: boolean;
  /** The compression under way, once its first slice is done. */
  deflation: Deflation | null;
  /** Its number among the messages deferred (see {@linkcode Outgoing.deferredDone}). */
  seq: number;
  /** The bytes it stands for in {@linkcode Outgoing.buffered} while deferred. */
  size: number;
}

/** One connection's outgoing frames: the queue, and the messages waiting behind a large compressed one. */
export class Outgoing {
  /**
   * The number of the last message that was deferred rather than queued
   * (0: none yet); with {@linkcode deferredDone} it says whether a send's
   * bytes have left the caller's hands.
   */
  lastDeferred = 0;
  /** The number of the last deferred message that is now in the queue. */
  deferredDone = 0;
  /** Bytes the last {@linkcode message} compressed there and then (0 when it did not). */
  compressed = 0;
  #queue: SendQueue;
  #deflate: PerMessageDeflate | null;
  #deferred: Deferred[] = [];
  #deferredBytes = 0;

  /**
   * @param masked whether frames are masked (the client side)
   * @param deflate permessage-deflate, when agreed
   */
  constructor(masked: boolean, deflate: PerMessageDeflate | null) {
    this.#queue = new SendQueue(masked);
    this.#deflate = deflate;
  }

  /** Bytes queued or being written, and the bytes of the messages deferred. */
  get buffered(): number {
    return this.#queue.buffered + this.#deferredBytes;
  }

  /** Memory held: the queue, the deferred messages, an engine lent to a compression. */
  get held(): number {
    return this.#queue.held + this.#deferredBytes + (this.#deferred[0]?.deflation?.held ?? 0);
  }

  /** Bytes ever queued, a position in the outgoing stream (deferred messages are not in it yet). */
  get queuedTotal(): number {
    return this.#queue.queuedTotal;
  }

  /** Bytes ever written, a position in the outgoing stream. */
  get writtenTotal(): number {
    return this.#queue.writtenTotal;
  }

  /** Whether messages wait to be compressed or queued: {@linkcode take} has more to do. */
  get pending(): boolean {
    return this.#deferred.length > 0;
  }

  /**
   * Queues a text (string) or binary (bytes) message and returns its
   * payload size. A message over {@linkcode DEFLATE_SLICE} that goes
   * compressed, and any message behind one, is deferred
   * ({@linkcode lastDeferred} then names it); a deferred binary payload is
   * read from the caller's bytes until {@linkcode deferredDone} reaches it.
   */
  message(data: Message): number {
    const deflate = this.#deflate;
    // Compressed: a message at least the threshold long (a string's UTF-16
    // length is a lower bound of its UTF-8 size, so short text is not encoded
    // just to be measured). Control frames are never compressed (§6.1).
    const compress = deflate !== null && data.length >= deflate.threshold;
    this.compressed = 0;
    const opcode = typeof data === "string" ? Opcode.Text : Opcode.Binary;
    if (compress) {
      const bytes = typeof data === "string" ? encoder.encode(data) : data;
      if (this.#deferred.length === 0 && bytes.length <= DEFLATE_SLICE) {
        this.#queue.frame(opcode, deflate.compress(bytes), true, true);
        this.compressed = bytes.length;
      } else {
        this.#defer(opcode, bytes, true);
      }
      return bytes.length;
    }
    if (this.#deferred.length === 0) {
      return typeof data === "string"
        ? this.#queue.text(data)
        : this.#queue.frame(Opcode.Binary, data);
    }
    // Behind a compression: a large binary payload is copied, since the
    // queue would send it from the caller's bytes after its promise settled.
    const payload = typeof data !== "string" && data.length >= ZERO_COPY_PAYLOAD
      ? data.slice()
      : data;
    this.#defer(opcode, payload, false);
    return typeof data === "string" ? encoder.encode(data).length : data.length;
  }

  /** Queues a ping or pong at once (RFC 6455 §5.4: between fragments if need be). */
  control(opcode: number, payload: Uint8Array): void {
    this.#queue.frame(opcode, payload);
  }

  /**
   * Queues the close frame: after every deferred message, or, with `cut`
   * (the connection is failing), at once, the deferred messages dropped.
   */
  close(payload: Uint8Array, cut: boolean): void {
    if (cut) this.#dropDeferred();
    if (this.#deferred.length === 0) this.#queue.frame(Opcode.Close, payload);
    else this.#defer(Opcode.Close, payload.slice(), false);
  }

  /**
   * Hands out the bytes to write, in order, or null when there are none.
   * First it moves what is ready of the deferred messages to the queue,
   * compressing at most one slice: a large message takes several calls,
   * and its owner lets other connections run between them.
   */
  take(): Uint8Array[] | null {
    this.#advance();
    return this.#queue.take();
  }

  /** Reports `n` more bytes of the taken output as written. */
  written(n: number): void {
    this.#queue.written(n);
  }

  /**
   * Drops every frame not yet taken and every deferred message, to free
   * memory when the connection is failing or finished; what was taken is
   * still written whole.
   */
  drop(): void {
    this.#dropDeferred();
    this.#queue.drop();
  }

  #defer(opcode: number, data: Uint8Array | string, compress: boolean): void {
    const size = typeof data === "string" ? data.length : data.length;
    this.#deferred.push({
      opcode,
      data,
      compress,
      deflation: null,
      seq: ++this.lastDeferred,
      size,
    });
    this.#deferredBytes += size;
  }

  /** Moves deferred messages to the queue until one compression slice is done. */
  #advance(): void {
    const list = this.#deferred;
    while (list.length > 0) {
      const d = list[0];
      if (!d.compress) {
        if (typeof d.data === "string") this.#queue.text(d.data);
        else this.#queue.frame(d.opcode, d.data);
        this.#done(d);
        continue;
      }
      const first = d.deflation === null;
      d.deflation ??= deflation(this.#deflate!, d.data as Uint8Array);
      const before = d.deflation.remaining;
      const { out, last } = d.deflation.step();
      this.#deferredBytes -= before - d.deflation.remaining;
      d.size = d.deflation.remaining;
      // The first fragment carries the opcode and RSV1 (RFC 7692 §6.1); the
      // others are continuations. An empty non-final fragment is left out.
      if (out.length > 0 || last || first) {
        this.#queue.frame(first ? d.opcode : Opcode.Continuation, out, last, first);
      }
      if (last) this.#done(d);
      return;
    }
  }

  #done(d: Deferred): void {
    this.#deferred.shift();
    this.#deferredBytes -= d.size;
    this.deferredDone = d.seq;
  }

  #dropDeferred(): void {
    for (const d of this.#deferred) d.deflation?.close();
    this.#deferred = [];
    this.#deferredBytes = 0;
    this.deferredDone = this.lastDeferred;
  }
}
