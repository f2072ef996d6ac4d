/**
 * The sending side of a connection: frames are encoded straight into one
 * buffer and written together, one write per batch, however many sends made
 * the batch (RFC 6455 §5.2 framing, §5.3 masking for clients).
 *
 * Small frames are copied into the buffer; while one batch is being written
 * the next one collects in a second buffer. A large unmasked payload is not
 * copied at all: its header closes the current buffer and the payload itself
 * is written after it.
 *
 * @module
 */

import { frameHeaderSize, MAX_HEADER_SIZE, Opcode, writeFrameHeader } from "./frame.ts";
import { maskInto, unmask } from "./mask.ts";

/** A payload at least this large is written from the caller's bytes, not copied. */
const ZERO_COPY_PAYLOAD = 64 * 1024;
/** A send buffer larger than this is dropped after its write, not kept for the next. */
const KEEP_SEND_BUFFER = 256 * 1024;
/** First size of a send buffer. */
const INITIAL_SEND_BUFFER = 4 * 1024;

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

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/** Where the bytes go: a Deno.Conn's write. */
export interface FrameWriter {
  /** Writes some of `p`, resolving with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
}

/** Frames waiting to be written, and the loop that writes them. */
export class Outbox {
  /** When a write last completed (ms since the epoch), 0 before the first. */
  lastSent = 0;

  #writer: FrameWriter;
  #masked: boolean;
  #onError: (err: unknown) => void;
  #chunks: Uint8Array[] = [];
  #chunkBytes = 0;
  #buf: Uint8Array | null = null;
  #spare: Uint8Array | null = null;
  #len = 0;
  #inflight = 0;
  #writing = false;
  #scheduled = false;
  #closed = false;
  #batch: Deferred | null = null;
  #drained: Deferred | null = null;

  /**
   * @param writer where frames are written
   * @param masked whether frames are masked (the client side)
   * @param onError called once when a write fails; nothing is written after
   */
  constructor(writer: FrameWriter, masked: boolean, onError: (err: unknown) => void) {
    this.#writer = writer;
    this.#masked = masked;
    this.#onError = onError;
  }

  /** Bytes queued or being written, not yet taken by the kernel. */
  get buffered(): number {
    return this.#chunkBytes + this.#len + this.#inflight;
  }

  /**
   * Queues one frame. A large unmasked `payload` is written from the caller's
   * bytes, so it must not change until the batch's promise resolves.
   */
  frame(opcode: number, payload: Uint8Array, fin = true): void {
    const key = this.#masked ? maskKeys.next() : null;
    if (!key && payload.length >= ZERO_COPY_PAYLOAD) {
      const buf = this.#reserve(MAX_HEADER_SIZE);
      this.#len += writeFrameHeader(buf, this.#len, fin, opcode, payload.length, null);
      this.#seal();
      this.#chunks.push(payload);
      this.#chunkBytes += payload.length;
      return;
    }
    const buf = this.#reserve(MAX_HEADER_SIZE + payload.length);
    const off = this.#len + writeFrameHeader(buf, this.#len, fin, opcode, payload.length, key);
    if (key) maskInto(payload, buf, off, key);
    else buf.set(payload, off);
    this.#len = off + payload.length;
  }

  /** Queues a text message, encoding it straight into the buffer; returns its byte length. */
  text(text: string): number {
    // UTF-8 needs at most 3 bytes per UTF-16 unit: reserve for that, then
    // move the payload back if the real length needs a shorter header (the
    // length must use the fewest bytes, RFC 6455 §5.2).
    const bound = text.length * 3;
    const guess = frameHeaderSize(bound, this.#masked);
    const buf = this.#reserve(guess + bound);
    const start = this.#len + guess;
    const { written } = encoder.encodeInto(text, buf.subarray(start, start + bound));
    const size = frameHeaderSize(written, this.#masked);
    if (size !== guess) buf.copyWithin(this.#len + size, start, start + written);
    const key = this.#masked ? maskKeys.next() : null;
    const off = this.#len + writeFrameHeader(buf, this.#len, true, Opcode.Text, written, key);
    if (key) unmask(buf, off, off + written, key);
    this.#len = off + written;
    return written;
  }

  /** Schedules a write of everything queued; resolves when this batch is written. */
  pending(): Promise<void> {
    if (this.#closed) {
      const closed = Promise.reject(new Error("the WebSocket connection closed"));
      closed.catch(() => {}); // Like a batch: a send nobody awaits must not crash the process.
      return closed;
    }
    if (!this.#batch) {
      this.#batch = deferred();
      // A send nobody awaits must not crash the process when the socket fails.
      this.#batch.promise.catch(() => {});
    }
    if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      // Sends made in the same turn (e.g. echoes of one read) join one write.
      queueMicrotask(() => this.#flush());
    }
    return this.#batch.promise;
  }

  /** Resolves when everything queued has been written, or the outbox was closed. */
  flushed(): Promise<void> {
    if (this.buffered === 0 || this.#closed) return Promise.resolve();
    this.#drained ??= deferred();
    this.pending();
    return this.#drained.promise;
  }

  /** Stops writing: pending sends reject, waiters for the flush resolve. */
  close(): void {
    this.#closed = true;
    this.#batch?.reject(new Error("the WebSocket connection closed"));
    this.#batch = null;
    this.#drained?.resolve();
    this.#drained = null;
  }

  #reserve(bytes: number): Uint8Array {
    const need = this.#len + bytes;
    let buf = this.#buf;
    if (!buf || buf.length < need) {
      let size = buf ? buf.length : INITIAL_SEND_BUFFER;
      // Grow geometrically, so many small frames behind a big one cost
      // amortised O(1) each; a buffer past KEEP_SEND_BUFFER is dropped after
      // its write anyway.
      while (size < need) size *= 2;
      const grown = new Uint8Array(size);
      if (buf) grown.set(buf.subarray(0, this.#len));
      buf = this.#buf = grown;
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

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (!this.#closed && this.#chunkBytes + this.#len > 0) {
        const parts = this.#chunks;
        const tail = this.#len > 0 ? this.#buf : null;
        if (tail) parts.push(tail.subarray(0, this.#len));
        const batch = this.#batch;
        this.#chunks = [];
        this.#batch = null;
        this.#inflight = this.#chunkBytes + this.#len;
        this.#chunkBytes = 0;
        if (tail) {
          this.#buf = this.#spare;
          this.#spare = null;
          this.#len = 0;
        }
        try {
          for (const part of parts) {
            let off = 0;
            while (off < part.length) off += await this.#writer.write(part.subarray(off));
            this.#inflight -= part.length;
          }
          this.lastSent = Date.now();
        } catch (err) {
          this.#inflight = 0;
          batch?.reject(err);
          this.#closed = true;
          this.#onError(err);
          return;
        }
        if (tail && tail.length <= KEEP_SEND_BUFFER) this.#spare = tail;
        batch?.resolve();
      }
    } finally {
      this.#writing = false;
      if (this.#drained && (this.buffered === 0 || this.#closed)) {
        this.#drained.resolve();
        this.#drained = null;
      }
    }
  }
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
