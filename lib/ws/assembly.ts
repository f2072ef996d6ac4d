/**
 * A message that does not arrive whole (fragments, or a payload larger than
 * the read buffer takes): its payload streams into one growing buffer,
 * unmasked and, for text, checked as UTF-8 as it arrives. The
 * {@linkcode FrameReader} parses the frames and keeps the limits; this
 * keeps the bytes. A message that arrives whole in one read never comes
 * here.
 *
 * The buffer grows with what has arrived, never with what a header
 * promised: it at most doubles what has arrived before the final frame,
 * and steps at most ×{@linkcode FINAL_FRAME_GROWTH} within it.
 *
 * @module
 */

import { unmask } from "./mask.ts";
import { decodeText, invalidUtf8, Utf8Validator } from "./utf8.ts";
import { release, resize } from "../bytes.ts";

/** The first size of a message buffer when nothing says it must be smaller. */
export const FIRST_MESSAGE_BUFFER = 16 * 1024;

/**
 * How much a message buffer grows at a time while its final frame arrives,
 * whose size is announced: ×4, so a 1 MiB message takes four allocations
 * instead of seven, which cut the server's CPU per 1 MiB echo by about 8%
 * (1,656 → 1,510 µs, bench `large`), and the buffer never passes the
 * announced size. With the step straight to the end (`#room`) it holds at
 * most 8× what has arrived. Fragments before the final one grow it ×2:
 * their total is unknown, and ×4 there took RSS under 100 peers' 15 MiB
 * fragmented text from 481–488 MiB to 457–654 MiB.
 */
export const FINAL_FRAME_GROWTH = 4;

/** The payload of one streamed message, as it arrives. */
export class Assembly {
  /** Payload bytes of the frame arriving that are still to come. */
  remaining = 0;
  /** Whether the frame arriving is the message's last. */
  fin = false;
  #msg: Uint8Array | null = null;
  #len = 0;
  #masked = false;
  /** The masking key of the frame arriving (made when a masked payload first streams). */
  #key: Uint8Array | null = null;
  #phase = 0;
  /** Whether the payload is text to check as it arrives (not compressed text: that is checked once inflated). */
  #checkText = false;
  /** Checks text as it streams (made when text first streams). */
  #utf8: Utf8Validator | null = null;

  /** Memory held: the message buffer. */
  get held(): number {
    return this.#msg?.length ?? 0;
  }

  /** Payload bytes arrived so far. */
  get length(): number {
    return this.#len;
  }

  /** A new message starts; `checkText` for uncompressed text. */
  begin(checkText: boolean): void {
    this.#len = 0;
    this.#checkText = checkText;
    this.#utf8?.reset();
  }

  /**
   * The next frame's payload starts: `payloadLength` bytes, the last of the
   * message when `fin`, masked with the key at `buf[maskOffset]` unless
   * `maskOffset` is -1.
   */
  frame(payloadLength: number, fin: boolean, buf: Uint8Array, maskOffset: number): void {
    this.remaining = payloadLength;
    this.fin = fin;
    this.#masked = maskOffset !== -1;
    if (this.#masked) {
      (this.#key ??= new Uint8Array(4)).set(buf.subarray(maskOffset, maskOffset + 4));
    }
    this.#phase = 0;
  }

  /**
   * Where a read may put payload bytes straight into the message: at most
   * `max` of them, and never past the frame. Report the count with
   * {@linkcode took}.
   */
  target(max: number): Uint8Array {
    const room = this.#room(1);
    const n = Math.min(room, this.remaining, max);
    return this.#msg!.subarray(this.#len, this.#len + n);
  }

  /** `n` bytes were read into the last {@linkcode target}. */
  took(n: number): void {
    this.#took(this.#len, n);
  }

  /** Appends `n` payload bytes from `buf[start]` (the read buffer). */
  copy(buf: Uint8Array, start: number, n: number): void {
    const at = this.#len;
    this.#room(n);
    this.#msg!.set(buf.subarray(start, start + n), at);
    this.#took(at, n);
  }

  /** The complete message as text; 1007 if it is not UTF-8. Gives the buffer up. */
  text(): string {
    const len = this.#len;
    const msg = this.take();
    if (this.#utf8 !== null && !this.#utf8.complete) throw invalidUtf8();
    return msg === null ? "" : decodeText(msg.subarray(0, len));
  }

  /**
   * The complete message as bytes: the buffer itself when it fits exactly,
   * a copy only when it is much larger, else a view. Gives the buffer up.
   */
  bytes(): Uint8Array {
    const len = this.#len;
    const msg = this.take();
    if (msg === null) return new Uint8Array(0);
    return msg.length === len
      ? msg
      : msg.length - len > FIRST_MESSAGE_BUFFER
      ? msg.slice(0, len)
      : msg.subarray(0, len);
  }

  /**
   * Detaches the buffer (null if no byte came), whose first {@linkcode length}
   * bytes, as they were before this call, are the message.
   */
  take(): Uint8Array | null {
    const msg = this.#msg;
    this.#msg = null;
    this.#len = 0;
    return msg;
  }

  /** Frees the buffer: the connection is failing. */
  discard(): void {
    release(this.#msg);
    this.#msg = null;
  }

  /**
   * `n` payload bytes now sit in the message buffer at `at`: unmask them,
   * check them if text, and count them.
   */
  #took(at: number, n: number): void {
    const msg = this.#msg!;
    if (this.#masked) {
      unmask(msg, at, at + n, this.#key!, 0, this.#phase);
      this.#phase = (this.#phase + n) & 3;
    }
    if (this.#checkText && !(this.#utf8 ??= new Utf8Validator()).push(msg, at, at + n)) {
      throw invalidUtf8();
    }
    this.#len = at + n;
    this.remaining -= n;
  }

  /**
   * Ensures the message buffer has room for `want` more bytes, growing it
   * geometrically (×2 before the final frame, ×FINAL_FRAME_GROWTH in it,
   * at least FIRST_MESSAGE_BUFFER); while the final frame arrives, never
   * past what that frame still owes. Returns the room available.
   */
  #room(want: number): number {
    const msg = this.#msg;
    const len = this.#len;
    const free = msg ? msg.length - len : 0;
    if (free >= want) return free;
    let size = Math.max(len * (this.fin ? FINAL_FRAME_GROWTH : 2), FIRST_MESSAGE_BUFFER);
    if (this.fin) {
      // A step that leaves less than its own size still to come would be
      // followed by one that copies nearly the whole message (261,192 →
      // 1,044,768 → 1,048,576 was common under the bench's 1 MiB echoes,
      // which then copied 1.0 MB per message instead of 0.3): go to the end
      // at once.
      const whole = len + this.remaining;
      if (whole <= size * 2) size = whole;
    }
    size = Math.max(size, len + want);
    this.#msg = resize(msg, size, len);
    return size - len;
  }
}
