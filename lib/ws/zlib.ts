/**
 * Raw DEFLATE (RFC 1951) that the protocol core can call synchronously:
 * one call compresses or inflates one message, with a sync flush, keeping
 * the sliding window between calls (context takeover) unless reset.
 *
 * Deno's `node:zlib` offers this only through the engine handle its own
 * synchronous functions use (`_handle.writeSync`); the public stream API is
 * asynchronous and the public sync functions start a new engine each call.
 * This module is the one place that handle is touched; when it is missing
 * (another runtime, a Deno that changed it) {@linkcode zlibAvailable} says
 * so and permessage-deflate is simply never negotiated.
 *
 * Inflation stops as soon as the output passes a bound, so a small
 * compressed "bomb" costs no more than the bound.
 *
 * @module
 */

import zlib from "node:zlib";
import { errorText } from "../errors.ts";

const Z_NO_FLUSH = 0;
const Z_SYNC_FLUSH = 2;
/** Output is produced in chunks of this size. */
const CHUNK = 64 * 1024;

/** The engine handle inside a node:zlib object (an internal of Deno's polyfill). */
interface Handle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
  close(): void;
  /** Called by the engine during writeSync with an error message. */
  onerror: (message: string, errno: number) => void;
}

interface Engine {
  _handle: Handle | null;
  _writeState: Uint32Array;
  /** The last error the engine reported; set by our onerror. */
  failure?: string;
}

let available: boolean | undefined;

/** Whether synchronous, stateful zlib is available here (checked once, by a round trip). */
export function zlibAvailable(): boolean {
  if (available !== undefined) return available;
  try {
    const d = new RawDeflater(15);
    const i = new RawInflater(15);
    const text = new TextEncoder().encode("permessage-deflate self-test ".repeat(4));
    const out = i.push(d.push(text), 1024);
    available = out !== null && out.length === text.length && out.every((b, k) => b === text[k]);
    d.close();
    i.close();
  } catch {
    available = false;
  }
  return available;
}

function engineOf(stream: unknown): Engine {
  const e = stream as Engine;
  if (!e._handle || typeof e._handle.writeSync !== "function" || !e._writeState) {
    throw new TypeError("node:zlib has no synchronous engine handle here");
  }
  // The stream's own handler would also destroy the stream on the next tick,
  // which throws an uncaught error when nobody listens: record it instead.
  e._handle.onerror = (message: string) => {
    e.failure = message || "zlib error";
  };
  return e;
}

/**
 * Where output lands before it is copied out: shared, since every call is
 * synchronous (a fresh 64 KiB per call was a fifth of the CPU of a
 * compressed echo, measured).
 */
const OUT = new Uint8Array(CHUNK);

/**
 * Runs `inputs`, one after the other, through `e` with `flush`; calls `take`
 * with a copy of each chunk of output. Returns false if `take` asked to stop.
 */
function run(
  e: Engine,
  inputs: Uint8Array[],
  take: (chunk: Uint8Array) => boolean,
  flush = Z_SYNC_FLUSH,
): boolean {
  const cursor: Cursor = { inputs, index: 0, offset: 0 };
  return step(e, cursor, Infinity, take, flush) !== Step.Stopped;
}

/** Where a stepwise run stands in its inputs. */
interface Cursor {
  inputs: Uint8Array[];
  /** The input being consumed. */
  index: number;
  /** How much of it zlib has taken. */
  offset: number;
}

/** How a {@linkcode step} ended. */
const Step = { Done: 0, More: 1, Stopped: 2 } as const;

/**
 * Runs the inputs at `c` through `e` until they are all taken and flushed
 * (Done), at least `budget` bytes of output were produced (More: call again
 * with the same cursor), or `take` asked to stop (Stopped).
 */
function step(
  e: Engine,
  c: Cursor,
  budget: number,
  take: (chunk: Uint8Array) => boolean,
  flush: number,
): number {
  let produced = 0;
  for (; c.index < c.inputs.length; c.index++, c.offset = 0) {
    const input = c.inputs[c.index];
    for (;;) {
      if (produced >= budget) return Step.More;
      const inLen = input.length - c.offset;
      e._handle!.writeSync(flush, input, c.offset, inLen, OUT, 0, CHUNK);
      if (e.failure !== undefined) throw new Error(e.failure);
      const availOut = e._writeState[0];
      const availIn = e._writeState[1];
      const n = CHUNK - availOut;
      c.offset += inLen - availIn;
      produced += n;
      if (n > 0 && !take(OUT.slice(0, n))) return Step.Stopped;
      // Output space left over means zlib has taken all input and flushed.
      if (availOut !== 0) break;
    }
  }
  return Step.Done;
}

function join(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return all;
}

/** A raw DEFLATE compressor with a `2^windowBits` window (9–15). */
export class RawDeflater {
  #e: Engine;

  /** @param windowBits the LZ77 window, 9 to 15 (RFC 7692's max_window_bits) */
  constructor(windowBits: number, level = 6, memLevel = 8) {
    this.#e = engineOf(zlib.createDeflateRaw({ windowBits, level, memLevel }));
  }

  /**
   * Compresses `input` with a sync flush: the result ends with 00 00 FF FF
   * (RFC 7692 §7.2.1). With `more`, the message goes on in the next call:
   * nothing is flushed, and the output so far (maybe none) is returned.
   */
  push(input: Uint8Array, more = false): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    run(this.#e, [input], (c) => {
      parts.push(c);
      total += c.length;
      return true;
    }, more ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    return join(parts, total);
  }

  /** Forgets the window: the next output refers to nothing before it. */
  reset(): void {
    this.#e._handle!.reset();
  }

  /** Frees the engine. */
  close(): void {
    this.#e._handle?.close();
  }
}

/** A raw DEFLATE decompressor with a window of up to `2^windowBits`. */
export class RawInflater {
  #e: Engine;
  #cursor: Cursor | null = null;
  /**
   * Where the message begun is inflated to: the shared {@linkcode OUT} while
   * it fits there (a message done within one step is copied out once, at
   * its size), then a buffer of its own that zlib writes into directly,
   * grown ×4 up to the limit, so a large message is neither cut into
   * chunks nor joined.
   */
  #out: Uint8Array = OUT;
  #len = 0;
  #max = 0;

  /** @param windowBits the largest window the peer may use, 8 to 15 */
  constructor(windowBits: number) {
    this.#e = engineOf(zlib.createInflateRaw({ windowBits: Math.max(windowBits, 9) }));
  }

  /**
   * Inflates `input`, then `tail` (e.g. a sync flush marker put back);
   * returns null as soon as the output would pass `max` bytes, without
   * inflating the rest. Throws a RangeError for data that is not valid
   * DEFLATE.
   */
  push(input: Uint8Array, max: number, tail?: Uint8Array): Uint8Array | null {
    this.begin(tail ? [input, tail] : [input], max);
    return this.step(Infinity) === "done" ? this.output() : null;
  }

  /**
   * Starts inflating `inputs` (one message, then e.g. the sync flush marker
   * put back), bounded by `max` bytes of output, a slice at a time: see
   * {@linkcode RawInflater.step}.
   */
  begin(inputs: Uint8Array[], max: number): void {
    this.#cursor = { inputs, index: 0, offset: 0 };
    this.#out = OUT;
    this.#len = 0;
    this.#max = max;
  }

  /** Replaces the inputs of the message begun by equal copies (the same bytes, elsewhere). */
  resume(inputs: Uint8Array[]): void {
    if (this.#cursor) this.#cursor.inputs = inputs;
  }

  /** Bytes inflated so far of the message begun. */
  get length(): number {
    return this.#len;
  }

  /** Memory held for the message begun: its own output buffer, once it has one. */
  get held(): number {
    return this.#out === OUT ? 0 : this.#out.length;
  }

  /**
   * Inflates more of what {@linkcode RawInflater.begin} was given, about
   * `budget` bytes of output. Returns `done` once all is inflated
   * ({@linkcode output} then has it), `more` when there is more to do,
   * `over` when the output passed the limit. Throws a RangeError for data
   * that is not valid DEFLATE.
   */
  step(budget: number): "done" | "more" | "over" {
    const c = this.#cursor;
    if (c === null) return "done";
    let r: "done" | "more" | "over";
    try {
      r = this.#run(c, budget);
    } catch (err) {
      this.#cursor = null;
      throw new RangeError(`invalid compressed data: ${errorText(err)}`);
    }
    if (r !== "more") this.#cursor = null;
    return r;
  }

  /** The message inflated, at its size (once a step said `done`). */
  output(): Uint8Array {
    const out = this.#out;
    this.#out = OUT;
    if (out === OUT) return OUT.slice(0, this.#len);
    return this.#len === out.length ? out : out.subarray(0, this.#len);
  }

  #run(c: Cursor, budget: number): "done" | "more" | "over" {
    const e = this.#e;
    let produced = 0;
    for (; c.index < c.inputs.length; c.index++, c.offset = 0) {
      const input = c.inputs[c.index];
      for (;;) {
        if (produced >= budget) {
          // The message goes on later: its output so far may not stay in the shared buffer.
          if (this.#out === OUT) this.#grow();
          return "more";
        }
        if (this.#len === this.#out.length && !this.#grow()) return "over";
        const out = this.#out;
        const room = Math.min(out.length - this.#len, Math.max(CHUNK, budget - produced));
        const inLen = input.length - c.offset;
        e._handle!.writeSync(Z_SYNC_FLUSH, input, c.offset, inLen, out, this.#len, room);
        if (e.failure !== undefined) throw new Error(e.failure);
        const availOut = e._writeState[0];
        const n = room - availOut;
        c.offset += inLen - e._writeState[1];
        this.#len += n;
        produced += n;
        if (this.#len > this.#max) return "over";
        // Output space left over means zlib has taken all input and flushed.
        if (availOut !== 0) break;
      }
    }
    return "done";
  }

  /** More room for the output, ×4 up to one byte past the limit; false when it is at that. */
  #grow(): boolean {
    const cap = this.#max + 1;
    const old = this.#out;
    if (old.length >= cap) return false;
    const size = Math.min(cap, Math.max(old.length * 4, CHUNK));
    const grown = new Uint8Array(size);
    grown.set(old.subarray(0, this.#len));
    this.#out = grown;
    return true;
  }

  /** Forgets the window (and any message begun). */
  reset(): void {
    this.#cursor = null;
    this.#out = OUT;
    this.#e._handle!.reset();
  }

  /** Frees the engine. */
  close(): void {
    this.#cursor = null;
    this.#out = OUT;
    this.#e._handle?.close();
  }
}
