/**
 * One connection's permessage-deflate engines (RFC 7692 §7.2): compressing
 * what it sends and inflating what it receives, whole or a slice at a time,
 * with a memory account.
 *
 * - A side that does not keep its context uses a zlib engine shared by the
 *   whole process and reset after each message, so that connection costs no
 *   zlib memory of its own. A context kept across messages costs an engine
 *   of its own: about 256 KiB to compress with a 32 KiB window, about 40 KiB
 *   to inflate. {@linkcode PerMessageDeflate.held} reports it, so a server's
 *   memory budget can count it.
 * - Inflation is bounded: it stops as soon as the output passes the message
 *   size limit, so a small "bomb" costs no more than the limit.
 * - Fairness: a large message is inflated ({@linkcode Inflation}) or
 *   compressed ({@linkcode Deflation}) in slices, so that the connection
 *   can yield between them and one peer's (de)compression never holds the
 *   event loop for long. A message that is inflated across turns holds one
 *   of {@linkcode MAX_INFLATING} process-wide slots: the messages inflating
 *   at once, each up to the size limit, are what bounds their memory
 *   (50 bombs of 1 GiB cost 8 × the limit at most, not 50 ×). A message in
 *   slices takes its engine with it; a shared engine is lent to it and
 *   returned, reset, when it is done.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7692#section-7.2
 * @module
 */

import { type DeflateParams, MIN_OWN_WINDOW_BITS } from "./deflate.ts";
import { RawDeflater, RawInflater } from "./zlib.ts";

/** The bytes a sync flush ends with, stripped on send and put back on receive (§7.2.1, §7.2.2). */
const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);

/** Messages smaller than this (bytes) go uncompressed by default: the frame header would eat the gain. */
export const DEFAULT_COMPRESSION_THRESHOLD = 256;

/** zlib's default level, which ws and gorilla use too. */
export const DEFAULT_COMPRESSION_LEVEL = 6;

/**
 * The most messages that may be inflating across turns at once, in the
 * whole process; others wait for a slot, holding one slice each. ws lets
 * 10 zlib jobs run at once.
 */
export const MAX_INFLATING = 8;

/**
 * Input (bytes) compressed per slice of a message sent in slices, and the
 * size above which a message is compressed in slices at all. Measured here:
 * 256 KiB of JSON compresses in about 1 ms at level 6, of zeros in 0.7 ms,
 * of random bytes in 6 ms.
 */
export const DEFLATE_SLICE = 256 * 1024;

/** Output (bytes) inflated per slice: 1 MiB of zeros inflates in about 3 ms. */
export const INFLATE_SLICE = 256 * 1024;

/** The idle engine shared by every connection of one window size (and level), or null while lent. */
interface Shared<T> {
  engine: T | null;
}

// Engines shared by every connection that does not keep context, one per
// window size (and, to compress, level); lent whole to a message, given back
// when it is done. Each connection finds its slot once, at its start.
const sharedDeflaters = new Map<string, Shared<RawDeflater>>();
const sharedInflaters = new Map<number, Shared<RawInflater>>();

function sharedSlot<K, T>(map: Map<K, Shared<T>>, key: K): Shared<T> {
  let slot = map.get(key);
  if (!slot) map.set(key, slot = { engine: null });
  return slot;
}
/** Messages inflating across turns now (see {@linkcode MAX_INFLATING}). */
let inflating = 0;

/** zlib's memory for a deflate engine: (1 << (windowBits + 2)) + (1 << (memLevel + 9)), plus its state. */
function deflaterBytes(bits: number): number {
  return (1 << (bits + 2)) + (1 << (8 + 9)) + 6 * 1024;
}

/** zlib's memory for an inflate engine: its window plus its state. */
function inflaterBytes(bits: number): number {
  return (1 << bits) + 7 * 1024;
}

/** Strips the sync flush's 00 00 FF FF (§7.2.1); an empty message is one 0x00 byte (§7.2.3.6). */
function stripTail(out: Uint8Array): Uint8Array {
  return out.length >= 4 ? out.subarray(0, out.length - 4) : Uint8Array.of(0);
}

/**
 * The zlib engines of one connection: its own (a context kept across
 * messages) or the process-wide shared ones, lent whole to one message at a
 * time and given back when it is done.
 */
export class Engines {
  /** Whether our own context is kept (the deflater is ours, not shared). */
  readonly keepOwn: boolean;
  /** Whether the peer's context is kept (the inflater is ours, not shared). */
  readonly keepPeer: boolean;
  /** zlib memory of one deflate engine of our window. */
  readonly deflaterBytes: number;
  /** zlib memory of one inflate engine of the peer's window. */
  readonly inflaterBytes: number;
  #level: number;
  #ownBits: number;
  #peerBits: number;
  #deflater: RawDeflater | null = null;
  #inflater: RawInflater | null = null;
  #sharedDeflater: Shared<RawDeflater> | null = null;
  #sharedInflater: Shared<RawInflater> | null = null;

  /** Engines for one side of a connection with `params` agreed. */
  constructor(params: DeflateParams, server: boolean, level: number) {
    this.#level = level;
    this.#ownBits = Math.max(
      MIN_OWN_WINDOW_BITS,
      server ? params.serverMaxWindowBits : params.clientMaxWindowBits,
    );
    this.#peerBits = server ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    this.keepOwn = !(server ? params.serverNoContextTakeover : params.clientNoContextTakeover);
    this.keepPeer = !(server ? params.clientNoContextTakeover : params.serverNoContextTakeover);
    this.deflaterBytes = deflaterBytes(this.#ownBits);
    this.inflaterBytes = inflaterBytes(this.#peerBits);
    if (!this.keepOwn) {
      this.#sharedDeflater = sharedSlot(sharedDeflaters, `${this.#ownBits}/${level}`);
    }
    if (!this.keepPeer) this.#sharedInflater = sharedSlot(sharedInflaters, this.#peerBits);
  }

  /** zlib memory held for this connection alone (engines that keep context). */
  get held(): number {
    return (this.#deflater ? this.deflaterBytes : 0) + (this.#inflater ? this.inflaterBytes : 0);
  }

  /** The engine to compress one message with: our own, or the shared one (lent until given back). */
  takeDeflater(): RawDeflater {
    const shared = this.#sharedDeflater;
    if (shared === null) return this.#deflater ??= new RawDeflater(this.#ownBits, this.#level);
    const engine = shared.engine ?? new RawDeflater(this.#ownBits, this.#level);
    shared.engine = null;
    return engine;
  }

  /** Gives back an engine from {@linkcode takeDeflater}: a shared one is reset and shared again. */
  giveDeflater(engine: RawDeflater): void {
    const shared = this.#sharedDeflater;
    if (shared === null) return;
    if (shared.engine !== null) {
      engine.close();
      return;
    }
    engine.reset();
    shared.engine = engine;
  }

  /** The engine to inflate one message with: our own, or the shared one (lent until given back). */
  takeInflater(): RawInflater {
    const shared = this.#sharedInflater;
    if (shared === null) return this.#inflater ??= new RawInflater(this.#peerBits);
    const engine = shared.engine ?? new RawInflater(this.#peerBits);
    shared.engine = null;
    return engine;
  }

  /** Gives back an inflate engine; one that failed (`ok` false) and was shared is dropped. */
  giveInflater(engine: RawInflater, ok: boolean): void {
    const shared = this.#sharedInflater;
    if (shared === null) return; // our own: it dies with the connection
    if (ok && shared.engine === null) {
      engine.reset();
      shared.engine = engine;
    } else {
      engine.close();
    }
  }

  /** Frees the engines of its own. */
  close(): void {
    this.#deflater?.close();
    this.#inflater?.close();
    this.#deflater = this.#inflater = null;
  }
}

let enginesOf: (d: PerMessageDeflate) => Engines;

/** One connection's permessage-deflate: compresses what it sends, inflates what it receives. */
export class PerMessageDeflate {
  /** The agreed parameters. */
  readonly params: DeflateParams;
  /** Messages smaller than this (bytes) are sent uncompressed. */
  readonly threshold: number;
  #engines: Engines;

  static {
    enginesOf = (d) => d.#engines;
  }

  /**
   * The engine of one side of a connection.
   *
   * @param params what was agreed
   * @param role which side this is: its own parameters are the server's or the client's
   * @param threshold messages below this many bytes go uncompressed; DEFAULT_COMPRESSION_THRESHOLD by default
   * @param level zlib's compression level, 1 (fastest) to 9 (smallest); 6 by default
   */
  constructor(
    params: DeflateParams,
    role: "server" | "client",
    threshold?: number,
    level?: number,
  ) {
    if (threshold === undefined) threshold = DEFAULT_COMPRESSION_THRESHOLD;
    if (level === undefined) level = DEFAULT_COMPRESSION_LEVEL;
    if (!Number.isInteger(level) || level < 1 || level > 9) {
      throw new RangeError(`a compression level is 1 to 9, not ${level}`);
    }
    this.params = params;
    this.threshold = threshold;
    this.#engines = new Engines(params, role === "server", level);
  }

  /** zlib memory held for this connection alone (engines that keep context). */
  get held(): number {
    return this.#engines.held;
  }

  /** Compresses one message's payload; the result goes in frames with RSV1 on the first (§7.2.1). */
  compress(payload: Uint8Array): Uint8Array {
    const engines = this.#engines;
    const engine = engines.takeDeflater();
    try {
      return stripTail(engine.push(payload));
    } finally {
      engines.giveDeflater(engine);
    }
  }

  /**
   * Inflates one message's payload (with the 00 00 FF FF put back, §7.2.2);
   * returns null as soon as the output passes `max` bytes. Throws a
   * RangeError for data that is not valid DEFLATE.
   */
  decompress(payload: Uint8Array, max: number): Uint8Array | null {
    const engines = this.#engines;
    const engine = engines.takeInflater();
    let ok = false;
    try {
      const out = engine.push(payload, max, TAIL);
      ok = true;
      return out;
    } finally {
      engines.giveInflater(engine, ok);
    }
  }

  /** Frees the engines of its own. */
  close(): void {
    this.#engines.close();
  }
}

/**
 * Starts compressing one message of `d`'s connection in slices
 * ({@linkcode Deflation.step}), for a message larger than
 * {@linkcode DEFLATE_SLICE}. `payload` must not change until it is done.
 */
export function deflation(d: PerMessageDeflate, payload: Uint8Array): Deflation {
  return new Deflation(enginesOf(d), payload);
}

/**
 * Starts inflating one message of `d`'s connection in slices
 * ({@linkcode Inflation.step}), bounded by `max` bytes of output.
 * `payload` must stay unchanged until the first step returns, or until
 * {@linkcode Inflation.detach} was called.
 */
export function inflation(d: PerMessageDeflate, payload: Uint8Array, max: number): Inflation {
  const engines = enginesOf(d);
  return new Inflation(engines, engines.takeInflater(), payload, max);
}

/** How an {@linkcode Inflation} step ended. */
export type InflateStep = "done" | "more" | "wait" | "over";

/**
 * One message being inflated a slice at a time: each {@linkcode step}
 * produces about {@linkcode INFLATE_SLICE} bytes. Past its first step it
 * needs one of the {@linkcode MAX_INFLATING} slots, or it waits.
 */
export class Inflation {
  /** Output bytes of the last step (the work it did). */
  last = 0;
  #owner: Engines;
  #engine: RawInflater | null;
  #input: Uint8Array;
  #result: Uint8Array | null = null;
  #total = 0;
  #steps = 0;
  #slot = false;
  #detached = false;

  /** Made by {@linkcode inflation}. */
  constructor(owner: Engines, engine: RawInflater, payload: Uint8Array, max: number) {
    this.#owner = owner;
    this.#engine = engine;
    this.#input = payload;
    engine.begin([payload, TAIL], max);
  }

  /** Output bytes so far. */
  get total(): number {
    return this.#total;
  }

  /** Memory held: the output so far, a detached copy of the input, a lent engine. */
  get held(): number {
    const engine = this.#engine;
    return (this.#result?.length ?? engine?.held ?? 0) +
      (this.#detached ? this.#input.length : 0) +
      (engine && !this.#owner.keepPeer ? this.#owner.inflaterBytes : 0);
  }

  /**
   * Inflates the next slice. `done`: {@linkcode result} holds the message;
   * `more`: call again (after letting others run); `wait`: no slot is free,
   * call again later; `over`: the output passed the limit (the engine is
   * given back). Throws a RangeError for data that is not valid DEFLATE.
   */
  step(): InflateStep {
    this.last = 0;
    const engine = this.#engine;
    if (engine === null) return "done";
    if (this.#steps > 0 && !this.#slot) {
      if (inflating >= MAX_INFLATING) return "wait";
      inflating++;
      this.#slot = true;
    }
    this.#steps++;
    const before = engine.length;
    let r: "done" | "more" | "over";
    try {
      r = engine.step(INFLATE_SLICE);
    } catch (err) {
      this.#end(false);
      throw err;
    }
    this.last = engine.length - before;
    this.#total = engine.length;
    if (r === "more") return "more";
    if (r === "done") this.#result = engine.output();
    this.#end(true);
    return r;
  }

  /** The inflated message, once a step said `done`. */
  result(): Uint8Array {
    const out = this.#result ?? new Uint8Array(0);
    this.#result = null;
    return out;
  }

  /** Copies the input, so that the caller may reuse the buffer it was in. */
  detach(): void {
    if (this.#detached || this.#engine === null) return;
    this.#detached = true;
    this.#input = this.#input.slice();
    this.#engine.resume([this.#input, TAIL]);
  }

  /** Gives up (the connection ended): frees the slot and gives the engine back. */
  close(): void {
    this.#result = null;
    this.#end(false);
  }

  #end(ok: boolean): void {
    if (this.#slot) {
      inflating--;
      this.#slot = false;
    }
    const engine = this.#engine;
    this.#engine = null;
    if (engine) this.#owner.giveInflater(engine, ok);
  }
}

/**
 * One message being compressed a slice at a time: each {@linkcode step}
 * takes {@linkcode DEFLATE_SLICE} bytes of it and returns the compressed
 * bytes so far, to go in a frame of their own (the first with RSV1).
 */
export class Deflation {
  /** Input bytes not yet compressed. */
  remaining: number;
  #owner: Engines;
  #engine: RawDeflater | null;
  #payload: Uint8Array;
  #offset = 0;

  /** Made by {@linkcode deflation}. */
  constructor(owner: Engines, payload: Uint8Array) {
    this.#owner = owner;
    this.#payload = payload;
    this.remaining = payload.length;
    this.#engine = owner.takeDeflater();
  }

  /** Memory held: a lent engine (the payload is the caller's, counted by whoever queued it). */
  get held(): number {
    return this.#engine && !this.#owner.keepOwn ? this.#owner.deflaterBytes : 0;
  }

  /** Compresses the next slice; `last` says whether that was the end of the message. */
  step(): { out: Uint8Array; last: boolean } {
    const engine = this.#engine!;
    const end = Math.min(this.#payload.length, this.#offset + DEFLATE_SLICE);
    const last = end === this.#payload.length;
    let out = engine.push(this.#payload.subarray(this.#offset, end), !last);
    this.#offset = end;
    this.remaining = this.#payload.length - end;
    if (last) {
      out = out.length >= 4 ? out.subarray(0, out.length - 4) : out;
      this.close();
    }
    return { out, last };
  }

  /** Gives the engine back (done, or given up). */
  close(): void {
    const engine = this.#engine;
    this.#engine = null;
    if (engine) this.#owner.giveDeflater(engine);
  }
}
