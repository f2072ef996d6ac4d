/**
 * The sending side of the protocol, without I/O: frames are encoded into a
 * queue of byte chunks (RFC 6455 §5.2 framing, §5.3 masking for clients),
 * and whoever owns the socket takes them with {@linkcode SendQueue.take} and
 * reports what the kernel accepted with {@linkcode SendQueue.written}.
 *
 * Small frames are copied into one growing buffer, so a batch of sends
 * becomes one write. A large unmasked payload is not copied at all: its
 * header ends the current buffer and the payload itself is queued after it.
 * Nothing is allocated per queued message beyond its bytes: no promise, no
 * closure.
 *
 * @module
 */

import { frameHeaderSize, MAX_HEADER_SIZE, Opcode, writeFrameHeader } from "./frame.ts";
import { maskInto, unmask } from "./mask.ts";
import { release, resize, smallBuffers } from "../bytes.ts";
import { encodeAscii, SHORT_TEXT } from "./utf8.ts";

/** A payload at least this large is sent from the caller's bytes, not copied. */
export const ZERO_COPY_PAYLOAD = 64 * 1024;
/** A send buffer larger than this is dropped after its write, not kept for the next. */
const KEEP_SEND_BUFFER = 256 * 1024;
/**
 * First size of a send buffer: one of the process's free 4 KiB buffers
 * ({@linkcode smallBuffers}). A queue gives it back once all it holds is
 * written and takes one again when it next has something to send, so an
 * idle connection holds no send buffer and a new one makes none.
 */
const INITIAL_SEND_BUFFER = smallBuffers.size;

const encoder = new TextEncoder();

/** A pool of random bytes for client mask keys (RFC 6455 §5.3 asks for unpredictable keys). */
class MaskKeys {
  #pool = new Uint8Array(4096);
  #pos = this.#pool.length;

  next(): Uint8Array {
    if (this.#pos + 4 > this.#pool.length) {
      crypto.getRandomValues(this.#pool);
      this.#pos = 0;
    }
    const key = this.#pool.subarray(this.#pos, this.#pos + 4);
    this.#pos += 4;
    return key;
  }
}
const maskKeys = new MaskKeys();

/** Frames waiting to be written, as byte chunks, with an account of their size. */
export class SendQueue {
  /** Bytes ever queued; with {@linkcode writtenTotal}, positions in the stream. */
  queuedTotal = 0;
  /** Bytes ever reported written. */
  writtenTotal = 0;

  #masked: boolean;
  #chunks: Uint8Array[] = [];
  #chunkBytes = 0;
  #buf: Uint8Array | null = null;
  #len = 0;
  #spare: Uint8Array | null = null;
  /** The coalescing buffer handed out by take(), reusable once written… */
  #lent: Uint8Array | null = null;
  /** …that is, once `writtenTotal` reaches this position. */
  #lentEnd = 0;

  /** @param masked whether frames are masked (the client side) */
  constructor(masked: boolean) {
    this.#masked = masked;
  }

  /** Bytes queued or taken but not yet written. */
  get buffered(): number {
    return this.queuedTotal - this.writtenTotal;
  }

  /** Memory held: the bytes still to write plus the buffers kept for reuse. */
  get held(): number {
    return this.buffered + (this.#buf ? this.#buf.length - this.#len : 0) +
      (this.#spare?.length ?? 0);
  }

  /**
   * Queues one frame and returns its payload size. A large unmasked
   * `payload` is written from the caller's bytes, so it must not change
   * until it has been written (`writtenTotal` passes its end).
   */
  frame(opcode: number, payload: Uint8Array, fin = true, rsv1 = false): number {
    const key = this.#masked ? maskKeys.next() : null;
    const n = payload.length;
    if (!key && n >= ZERO_COPY_PAYLOAD) {
      const buf = this.#reserve(MAX_HEADER_SIZE);
      const h = writeFrameHeader(buf, this.#len, fin, opcode, n, null, rsv1);
      this.#len += h;
      this.#seal();
      this.#chunks.push(payload);
      this.#chunkBytes += n;
      this.queuedTotal += h + n;
      return n;
    }
    const buf = this.#reserve(MAX_HEADER_SIZE + n);
    const start = this.#len;
    const off = start + writeFrameHeader(buf, start, fin, opcode, n, key, rsv1);
    if (key) maskInto(payload, buf, off, key);
    else buf.set(payload, off);
    this.#len = off + n;
    this.queuedTotal += this.#len - start;
    return n;
  }

  /** Queues a text message, encoding it straight into the buffer; returns its byte length. */
  text(text: string): number {
    if (text.length <= SHORT_TEXT) {
      // Short ASCII text: one small header, and a loop instead of encodeInto.
      const head = this.#masked ? 6 : 2;
      const buf = this.#reserve(head + text.length);
      const begin = this.#len;
      const n = encodeAscii(text, buf, begin + head);
      if (n >= 0) {
        const key = this.#masked ? maskKeys.next() : null;
        writeFrameHeader(buf, begin, true, Opcode.Text, n, key);
        if (key) unmask(buf, begin + head, begin + head + n, key);
        this.#len = begin + head + n;
        this.queuedTotal += head + n;
        return n;
      }
    }
    // UTF-8 needs at most 3 bytes per UTF-16 unit: reserve for that, then
    // move the payload back if the real length needs a shorter header (the
    // length must use the fewest bytes, RFC 6455 §5.2).
    const bound = text.length * 3;
    const guess = frameHeaderSize(bound, this.#masked);
    const buf = this.#reserve(guess + bound);
    const begin = this.#len;
    const start = begin + guess;
    const { written } = encoder.encodeInto(text, buf.subarray(start, start + bound));
    const size = frameHeaderSize(written, this.#masked);
    if (size !== guess) buf.copyWithin(begin + size, start, start + written);
    const key = this.#masked ? maskKeys.next() : null;
    const off = begin + writeFrameHeader(buf, begin, true, Opcode.Text, written, key);
    if (key) unmask(buf, off, off + written, key);
    this.#len = off + written;
    this.queuedTotal += this.#len - begin;
    return written;
  }

  /**
   * Hands out everything queued, in order, or null when nothing is. The
   * chunks always start on a frame boundary. They stay counted in
   * {@linkcode buffered} until reported with {@linkcode written}.
   */
  take(): Uint8Array[] | null {
    if (this.#chunkBytes + this.#len === 0) return null;
    const parts = this.#chunks;
    if (this.#len > 0) {
      parts.push(this.#buf!.subarray(0, this.#len));
      this.#lent = this.#buf;
      this.#lentEnd = this.queuedTotal;
      this.#buf = this.#spare;
      this.#spare = null;
      this.#len = 0;
    }
    this.#chunks = [];
    this.#chunkBytes = 0;
    return parts;
  }

  /** Reports `n` more bytes of the taken chunks as written. */
  written(n: number): void {
    this.writtenTotal += n;
    const lent = this.#lent;
    if (lent !== null && this.writtenTotal >= this.#lentEnd) {
      // The buffer handed out is written: use it again (small ones only),
      // or, when no sends have started a buffer since, give a pool-sized one back.
      this.#lent = null;
      if (lent.length > KEEP_SEND_BUFFER) return;
      if (this.#buf === null) {
        if (lent.length === INITIAL_SEND_BUFFER) smallBuffers.give(lent);
        else this.#buf = lent;
      } else this.#spare ??= lent;
    }
  }

  /**
   * Drops every frame not yet taken, to free memory when the connection is
   * failing; what was taken is still written whole, so the next frame (the
   * close frame) starts on a frame boundary.
   */
  drop(): void {
    const dropped = this.#chunkBytes + this.#len;
    this.#chunks = [];
    this.#chunkBytes = 0;
    this.#len = 0;
    release(this.#spare);
    this.#spare = null;
    if (this.#buf && this.#buf.length > KEEP_SEND_BUFFER) {
      release(this.#buf);
      this.#buf = null;
    }
    this.queuedTotal -= dropped;
  }

  #reserve(bytes: number): Uint8Array {
    const need = this.#len + bytes;
    let buf = this.#buf;
    if (buf === null && need <= INITIAL_SEND_BUFFER) return this.#buf = smallBuffers.take();
    if (!buf || buf.length < need) {
      let size = buf ? buf.length : INITIAL_SEND_BUFFER;
      // Grow geometrically, so many small frames behind a big one cost
      // amortised O(1) each; a buffer past KEEP_SEND_BUFFER is dropped after
      // its write anyway.
      while (size < need) size *= 2;
      buf = this.#buf = resize(buf, size, this.#len);
    }
    return buf;
  }

  /** Ends the current buffer as a chunk of its own; later frames start a new one. */
  #seal(): void {
    this.#chunks.push(this.#buf!.subarray(0, this.#len));
    this.#chunkBytes += this.#len;
    this.#buf = null;
    this.#len = 0;
  }
}
