/**
 * The receiving side of the protocol, without I/O: a read buffer that the
 * socket's owner fills, a frame parser over it, and message assembly with
 * its limits (RFC 6455 §5.2–§5.6). It is a pull parser: each call to
 * {@linkcode FrameReader.next} yields one event, or says that more bytes
 * are needed.
 *
 * Memory follows the bytes that arrived, never a header's promise:
 * - small frames are parsed in place in the read buffer (512 B, doubling
 *   while reads fill it, up to 64 KiB);
 * - a message that does not arrive whole (fragments, or a large payload)
 *   assembles into one growing buffer (`assembly.ts`), which at most
 *   doubles what has arrived; large payloads are read straight into it;
 * - text is validated as it arrives and decoded once, at the end;
 * - every frame counts at least its header toward the size limit, and a
 *   message has at most `maxFragments` frames.
 *
 * @module
 */

import { ProtocolViolation } from "./errors.ts";
import {
  emptyFrameHeader,
  type FrameHeader,
  isControl,
  MAX_HEADER_SIZE,
  Opcode,
  parseFrameHeader,
} from "./frame.ts";
import { unmask } from "./mask.ts";
import { decodeAscii, decodeText, SHORT_TEXT } from "./utf8.ts";
import { BufferPool, release, resize } from "../bytes.ts";
import {
  type InflateStep,
  type Inflation,
  inflation,
  type PerMessageDeflate,
} from "./compression.ts";
import { InvalidFramePayloadData, MessageTooBig, ProtocolError } from "./close.ts";
import { Assembly } from "./assembly.ts";

/** Default largest message accepted, in bytes (16 MiB); larger ones get 1009. */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/** Default most frames one message may have (npm ws's figure); more get 1009. */
export const DEFAULT_MAX_FRAGMENTS = 16_384;

/** First size of a connection's read buffer; small, so idle connections are cheap. */
const INITIAL_READ_BUFFER = 512;
/** Free first read buffers: taken by each new reader, given back by one discarded between reads. */
const readBuffers = new BufferPool(INITIAL_READ_BUFFER, 1024);
/** The read buffer doubles while reads fill it, up to this size. */
const MAX_READ_BUFFER = 64 * 1024;
/** A whole frame up to this size waits in the read buffer; a larger one streams. */
const WHOLE_FRAME_MAX = 16 * 1024;
/** A payload remainder at least this large is read straight into the message. */
const DIRECT_READ_MIN = 16 * 1024;
/**
 * The most one read straight into a message may take: loopback hands out
 * several MiB per read, and one such read per connection per turn let 500
 * busy connections hold up everyone else for seconds.
 */
const DIRECT_READ_MAX = 256 * 1024;
/** Where reads go once the reader is discarding: shared, since nobody looks at it. */
const SINK = new Uint8Array(16 * 1024);
const EMPTY = new Uint8Array(0);

/**
 * The header being parsed. Parsing is synchronous and a header is used up
 * before the next is read, so every reader shares one (an idle connection
 * holds no header of its own).
 */
const HEADER = emptyFrameHeader();

/** What {@linkcode FrameReader.next} found. */
export const ReadEvent = {
  /** No complete event in the buffer: read more. */
  NeedInput: 0,
  /** A complete message is in {@linkcode FrameReader.message}. */
  Message: 1,
  /** A ping; its payload is in {@linkcode FrameReader.control}. */
  Ping: 2,
  /** A pong; its payload is in {@linkcode FrameReader.control}. */
  Pong: 3,
  /** A close frame; its payload is in {@linkcode FrameReader.control}. */
  Close: 4,
  /**
   * A compressed message is inflating in slices and not done yet:
   * {@linkcode FrameReader.work} says how much this slice did (0 when it
   * waits for a slot); call next() again, after letting others run.
   */
  Inflating: 5,
} as const;

/** A received message: a string for text, bytes for binary. */
export type Message = string | Uint8Array;

/** Limits of a {@linkcode FrameReader}. */
export interface ReaderOptions {
  /** A server expects masked frames, a client unmasked ones (RFC 6455 §5.1). */
  expectMasked: boolean;
  /** Largest message in bytes; frame headers count too (see the module doc). */
  maxMessageSize?: number;
  /** Most frames per message. */
  maxFragments?: number;
  /** permessage-deflate, when agreed: RSV1 marks a compressed message (RFC 7692 §6). */
  deflate?: PerMessageDeflate | null;
}

/** Parses frames out of bytes and assembles messages. */
export class FrameReader {
  /** The message of the last {@linkcode ReadEvent.Message}. */
  message: Message = EMPTY;
  /** Its size in bytes (as received: UTF-8 for text). */
  messageSize = 0;
  /** The work of the last {@linkcode ReadEvent.Inflating} slice, in bytes of output. */
  work = 0;
  /** The payload of the last control frame: a view, valid until the next call. */
  control: Uint8Array = EMPTY;

  readonly maxMessageSize: number;
  readonly maxFragments: number;
  #expectMasked: boolean;
  #deflate: PerMessageDeflate | null;
  /** The message being assembled is compressed (RSV1 on its first frame). */
  #compressed = false;
  /** A compressed message inflating in slices, its opcode, and the buffer it came in (freed when done). */
  #inflation: Inflation | null = null;
  #inflateOpcode = 0;
  #inflateInput: Uint8Array | null = null;

  // The read buffer: unparsed bytes are #buf[#start, #end).
  #buf: Uint8Array = readBuffers.take();
  #start = 0;
  #end = 0;
  /** The last readTarget() was the message buffer, not the read buffer. */
  #direct = false;
  /** Bytes of the last read into the read buffer. */
  #lastRead = 0;
  #discarding = false;
  /** Whether a read was asked for (readTarget) and not yet committed. */
  #reading = false;
  /**
   * Bytes of a buffer dropped while a read into it was in flight: the read
   * keeps the memory alive until it completes, so it is still held.
   */
  #pinned = 0;

  /** A data frame's payload is streaming into the assembly. */
  #inPayload = false;
  /** The streamed message's payload (made when a message first streams). */
  #asm: Assembly | null = null;

  // The message under way: opcode 0 when none.
  #opcode = 0;
  /** Toward maxMessageSize: each frame counts max(payload, header). */
  #counted = 0;
  #payloadAnnounced = 0;
  #fragments = 0;

  /** @param options masking rule and limits */
  constructor(options: ReaderOptions) {
    this.#expectMasked = options.expectMasked;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS;
    this.#deflate = options.deflate ?? null;
  }

  /** Memory held: the read buffer, the message being assembled or inflated. */
  get held(): number {
    return this.#buf.length + (this.#asm?.held ?? 0) + this.#pinned +
      (this.#inflation?.held ?? 0) + (this.#inflateInput?.length ?? 0);
  }

  /** Whether a message is partly received. */
  get midMessage(): boolean {
    return this.#opcode !== 0;
  }

  /** Places `bytes` (e.g. those that came with the handshake) as if read. */
  feed(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      const target = this.readTarget();
      const n = Math.min(target.length, bytes.length - off);
      target.set(bytes.subarray(off, off + n));
      this.commit(n);
      off += n;
    }
  }

  /**
   * Where the next read should put its bytes: the free end of the read
   * buffer, or, while a large payload arrives, the message buffer itself.
   * Never empty. Call {@linkcode commit} with how many bytes were read.
   */
  readTarget(): Uint8Array {
    // Asking for a target means no read into an earlier one is in flight.
    this.#pinned = 0;
    this.#reading = !this.#discarding;
    if (this.#discarding) return SINK;
    if (this.#inPayload && this.#start === this.#end && this.#asm!.remaining >= DIRECT_READ_MIN) {
      this.#direct = true;
      return this.#asm!.target(DIRECT_READ_MAX);
    }
    this.#direct = false;
    if (this.#end === this.#buf.length) this.#makeRoom(MAX_HEADER_SIZE);
    return this.#buf.subarray(this.#end);
  }

  /** Records that `n` bytes were read into the last {@linkcode readTarget}. */
  commit(n: number): void {
    this.#reading = false;
    this.#pinned = 0;
    if (this.#discarding) return;
    if (this.#direct) {
      this.#direct = false;
      this.#asm!.took(n);
      return;
    }
    const filled = this.#end + n === this.#buf.length;
    this.#end += n;
    this.#lastRead = n;
    // Reads that fill the buffer ask for a bigger one (up to the cap).
    if (filled && this.#buf.length < MAX_READ_BUFFER) {
      this.#makeRoom(this.#buf.length * 2 - (this.#end - this.#start));
    }
  }

  /**
   * Drops every buffer; from now on reads are thrown away. A buffer that a
   * read in flight still writes into stays in {@linkcode held} until that
   * read is committed: its memory is freed only then.
   */
  discard(): void {
    if (this.#discarding) return;
    this.#discarding = true;
    if (this.#reading) this.#pinned = this.#direct ? this.#asm!.held : this.#buf.length;
    // A buffer no read writes into is the next reader's; else it is released.
    if (this.#reading && !this.#direct) release(this.#buf);
    else readBuffers.give(this.#buf);
    this.#asm?.discard();
    this.#endInflation();
    this.#buf = EMPTY;
    this.#start = this.#end = 0;
    this.#inPayload = false;
    this.#opcode = 0;
  }

  /**
   * Parses the next event out of the buffered bytes. Throws
   * {@linkcode ProtocolViolation} for anything RFC 6455 or the limits
   * forbid, as early as the bytes show it: a bad header or an oversized
   * message before its payload arrives, bad UTF-8 at the first bad byte.
   */
  next(): number {
    const h = HEADER;
    this.work = 0;
    if (this.#inflation !== null && !this.#discarding) return this.#inflateStep();
    for (;;) {
      if (this.#discarding) return ReadEvent.NeedInput;
      if (this.#inPayload) {
        // 1. Move what the read buffer holds of the arriving payload.
        const asm = this.#asm!;
        const avail = this.#end - this.#start;
        if (avail > 0 && asm.remaining > 0) {
          const n = Math.min(avail, asm.remaining);
          const from = this.#start;
          this.#start += n;
          asm.copy(this.#buf, from, n);
        }
        if (this.#start === this.#end) this.#emptied();
        if (asm.remaining > 0) return ReadEvent.NeedInput;
        this.#inPayload = false;
        if (!asm.fin) continue; // the next fragment follows
        return this.#finishMessage();
      }

      // 2. The next header.
      if (
        !parseFrameHeader(
          this.#buf,
          this.#start,
          this.#end,
          this.#expectMasked,
          this.#deflate !== null,
          h,
        )
      ) {
        if (this.#start === this.#end) this.#emptied();
        return ReadEvent.NeedInput;
      }
      const total = h.headerLength + h.payloadLength;
      const whole = this.#end - this.#start >= total;

      // 3. Control frames (at most 125 bytes) are handled whole, in place.
      if (isControl(h.opcode)) return this.#control(h, total, whole);

      // 4. Data frames: the sequence rules and the limits, from the header.
      this.#checkDataFrame(h.opcode, h.headerLength, h.payloadLength);
      if (h.rsv1 && h.opcode === Opcode.Continuation) {
        // Only a message's first frame says it is compressed (RFC 7692 §6.1).
        throw new ProtocolViolation(ProtocolError, "RSV1 set on a continuation frame");
      }

      if (h.fin && h.opcode !== Opcode.Continuation) {
        // 5. The common case: a whole message in one frame, already here.
        if (whole) return this.#wholeMessage(h, total);
        // 6. A small unfragmented frame split across reads waits to be whole.
        if (total <= WHOLE_FRAME_MAX) {
          this.#counted = this.#fragments = this.#payloadAnnounced = 0;
          this.#makeRoom(total);
          return ReadEvent.NeedInput;
        }
      }

      // 7. Otherwise the payload streams into the message buffer.
      this.#streamFrame(h);
    }
  }

  /** Step 3 of {@linkcode next}: a control frame of `total` bytes at #start, once it is `whole`. */
  #control(h: FrameHeader, total: number, whole: boolean): number {
    const start = this.#start;
    if (!whole) {
      this.#makeRoom(total);
      return ReadEvent.NeedInput;
    }
    const p = start + h.headerLength;
    if (h.masked) unmask(this.#buf, p, start + total, this.#buf, h.maskOffset);
    this.control = this.#buf.subarray(p, start + total);
    this.#start += total;
    return h.opcode === Opcode.Ping
      ? ReadEvent.Ping
      : h.opcode === Opcode.Pong
      ? ReadEvent.Pong
      : ReadEvent.Close;
  }

  /** Step 5 of {@linkcode next}: a whole unfragmented message of `total` bytes at #start. */
  #wholeMessage(h: FrameHeader, total: number): number {
    const start = this.#start;
    const p = start + h.headerLength;
    const end = start + total;
    if (h.masked) unmask(this.#buf, p, end, this.#buf, h.maskOffset);
    this.#start += total;
    this.#counted = this.#fragments = this.#payloadAnnounced = 0;
    if (h.rsv1) return this.#inflate(h.opcode, this.#buf.subarray(p, end), null);
    this.messageSize = h.payloadLength;
    if (h.opcode === Opcode.Binary) {
      this.message = this.#buf.slice(p, end);
    } else {
      const ascii = end - p <= SHORT_TEXT ? decodeAscii(this.#buf, p, end) : null;
      this.message = ascii ?? decodeText(this.#buf.subarray(p, end));
    }
    return ReadEvent.Message;
  }

  /** Step 7 of {@linkcode next}: the frame's payload streams into the message, from after its header. */
  #streamFrame(h: FrameHeader): void {
    const asm = this.#asm ??= new Assembly();
    if (h.opcode !== Opcode.Continuation) {
      this.#opcode = h.opcode;
      this.#compressed = h.rsv1;
      asm.begin(h.opcode === Opcode.Text && !h.rsv1);
    }
    asm.frame(h.payloadLength, h.fin, this.#buf, h.maskOffset);
    this.#inPayload = true;
    this.#start += h.headerLength;
  }

  /** Fragmentation rules (RFC 6455 §5.4) and the limits, decided from a data frame's header. */
  #checkDataFrame(opcode: number, headerLength: number, payloadLength: number): void {
    if (opcode === Opcode.Continuation) {
      if (this.#opcode === 0) {
        throw new ProtocolViolation(ProtocolError, "continuation frame with nothing to continue");
      }
    } else {
      if (this.#opcode !== 0) {
        throw new ProtocolViolation(ProtocolError, "new data frame inside a fragmented message");
      }
      this.#counted = this.#fragments = this.#payloadAnnounced = 0;
    }
    this.#fragments++;
    this.#payloadAnnounced += payloadLength;
    this.#counted += Math.max(payloadLength, headerLength);
    if (this.#fragments > this.maxFragments) {
      throw new ProtocolViolation(
        MessageTooBig,
        `message of more than ${this.maxFragments} fragments`,
      );
    }
    if (this.#counted > this.maxMessageSize) {
      const size = this.#payloadAnnounced;
      throw new ProtocolViolation(
        MessageTooBig,
        size > this.maxMessageSize
          ? `message of ${size} bytes exceeds the limit of ${this.maxMessageSize}`
          : `message of ${size} bytes in ${this.#fragments} frames exceeds the limit of ${this.maxMessageSize} with frame headers counted`,
      );
    }
  }

  /** The streamed message is complete: decode it once, hand it out, reset. */
  #finishMessage(): number {
    const asm = this.#asm!;
    const text = this.#opcode === Opcode.Text;
    this.#opcode = 0;
    this.#counted = this.#fragments = this.#payloadAnnounced = 0;
    if (this.#compressed) {
      this.#compressed = false;
      const len = asm.length;
      const msg = asm.take();
      return this.#inflate(
        text ? Opcode.Text : Opcode.Binary,
        msg ? msg.subarray(0, len) : EMPTY,
        msg,
      );
    }
    this.messageSize = asm.length;
    this.message = text ? asm.text() : asm.bytes();
    return ReadEvent.Message;
  }

  /**
   * Inflates a compressed message (RFC 7692 §7.2.2) into
   * {@linkcode message}, a slice at a time (see `compression.ts`): bounded
   * by maxMessageSize as it inflates (1009 past it, without inflating the
   * rest), text checked as UTF-8 (1007), corrupt data refused (1007).
   * `owned` is the buffer `payload` lies in when it is the message's own
   * (freed once inflated); null when `payload` is a view of the read buffer,
   * which is then copied if the message takes more than one slice.
   */
  #inflate(opcode: number, payload: Uint8Array, owned: Uint8Array | null): number {
    this.#inflateOpcode = opcode;
    this.#inflateInput = owned;
    this.#inflation = inflation(this.#deflate!, payload, this.maxMessageSize);
    const event = this.#inflateStep();
    if (event === ReadEvent.Inflating && owned === null) this.#inflation?.detach();
    return event;
  }

  /** The next slice of the message inflating: {@linkcode ReadEvent.Inflating} until it is done. */
  #inflateStep(): number {
    const inf = this.#inflation!;
    let r: InflateStep;
    try {
      r = inf.step();
    } catch {
      this.#endInflation();
      throw new ProtocolViolation(InvalidFramePayloadData, "invalid compressed data");
    }
    this.work = inf.last;
    if (r === "more" || r === "wait") return ReadEvent.Inflating;
    const out = r === "done" ? inf.result() : null;
    this.#endInflation();
    if (out === null) {
      throw new ProtocolViolation(
        MessageTooBig,
        `message inflates past the limit of ${this.maxMessageSize} bytes`,
      );
    }
    this.messageSize = out.length;
    this.message = this.#inflateOpcode === Opcode.Binary ? out : decodeText(out);
    return ReadEvent.Message;
  }

  /** Ends the message inflating (done or given up): its slot, engine and input go back. */
  #endInflation(): void {
    this.#inflation?.close();
    this.#inflation = null;
    release(this.#inflateInput);
    this.#inflateInput = null;
  }

  /** Ensures `need` bytes fit from #start, compacting or growing the read buffer. */
  #makeRoom(need: number): void {
    const used = this.#end - this.#start;
    if (this.#buf.length - this.#start >= need && this.#end < this.#buf.length) return;
    if (this.#start > 0) this.#buf.copyWithin(0, this.#start, this.#end);
    if (this.#buf.length < need || this.#buf.length <= used) {
      let size = Math.max(this.#buf.length, INITIAL_READ_BUFFER);
      while (size < need || size <= used) size *= 2;
      this.#buf = resize(this.#buf, size, used);
    }
    this.#start = 0;
    this.#end = used;
  }

  /**
   * The read buffer is empty: start it over, and give back a buffer that a
   * burst grew once reads have become small again.
   */
  #emptied(): void {
    this.#start = this.#end = 0;
    if (this.#buf.length > INITIAL_READ_BUFFER && this.#lastRead * 8 < this.#buf.length) {
      this.#buf = resize(this.#buf, INITIAL_READ_BUFFER, 0);
    }
  }
}
