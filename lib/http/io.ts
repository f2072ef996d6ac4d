/**
 * The little I/O an HTTP/1.1 head needs: read one off a stream without
 * losing the bytes behind it, and write a buffer (or a head's text) completely.
 *
 * @module
 */

import { HandshakeError, INVALID_RESPONSE } from "./errors.ts";
import { findHeadEnd } from "./head.ts";
import { abortable } from "../async.ts";
import { smallBuffers } from "../bytes.ts";

/** Anything with `Deno.Conn`'s read: fills `p`, resolves the count or null at EOF. */
export interface Reader {
  /** Reads up to `p.length` bytes into `p`. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Anything with `Deno.Conn`'s write: writes a prefix of `p`, resolves its length. */
export interface Writer {
  /** Writes some of `p`. */
  write(p: Uint8Array): Promise<number>;
}

/** Options for {@linkcode readHead}. */
export interface ReadHeadOptions {
  /** The largest head accepted, its empty line included; see DEFAULT_MAX_HEAD_SIZE. */
  maxHeadSize: number;
  /** Aborting rejects with the signal's reason, e.g. a handshake timeout. */
  signal?: AbortSignal;
  /** Bytes already read from the stream, placed before anything read now. */
  initial?: Uint8Array;
  /**
   * Whose head this is. "request" (the default) refuses with 431 or 400 as a
   * server answers; "response" fails with status 0 (INVALID_RESPONSE), since
   * a client has nobody to answer.
   */
  kind?: "request" | "response";
}

/** The first read's buffer size; it doubles up to maxHeadSize as needed. */
const INITIAL_BUFFER_SIZE = 1024;

const EMPTY = new Uint8Array(0);

/**
 * First-read buffers handed back by {@linkcode recycleHead}, for the next
 * heads: making a typed array costs about 0.8 µs in Deno, and a server
 * reads one head per connection.
 */
const spare: Uint8Array[] = [];
const SPARE_MAX = 64;

/**
 * Gives the buffer of a head that {@linkcode readHead} returned back for
 * reuse, once nothing refers to the head's bytes any more (it has been
 * parsed into strings). Optional: a head never given back is collected.
 */
export function recycleHead(head: Uint8Array): void {
  const buf = head.buffer;
  if (buf.byteLength === INITIAL_BUFFER_SIZE && spare.length < SPARE_MAX) {
    spare.push(new Uint8Array(buf as ArrayBuffer));
  }
}

/**
 * Reads one HTTP head (RFC 9112 §2.1) up to and including its empty line,
 * and returns as soon as that line has arrived, without another read. The
 * empty line is CRLFCRLF, or LF LF or LF CR LF when the peer ends its lines
 * in bare LF: such a head is returned at once too, rather than waiting for a
 * CRLFCRLF that never comes, and parseRequestHead() or parseResponseHead()
 * then refuses it ("lines must end in CRLF", RFC 9112 §2.2; see
 * findHeadEnd()). Returns `head` and the bytes that came after it in the
 * same reads (`rest`: for an upgrade, the first WebSocket frames), or null on
 * EOF before any byte. A head longer than `maxHeadSize` is refused with 431
 * (RFC 6585 §5); EOF inside a head with 400. On abort it rejects with the
 * signal's reason and leaves one read pending: the caller must then close
 * the conn. `head` is a view of the read buffer (see {@linkcode recycleHead});
 * `rest` has its own.
 */
export async function readHead(
  conn: Reader,
  opts: ReadHeadOptions,
): Promise<{ head: Uint8Array; rest: Uint8Array } | null> {
  const { maxHeadSize, signal } = opts;
  const isResponse = opts.kind === "response";
  const initial = opts.initial ?? EMPTY;
  signal?.throwIfAborted();

  const size = Math.max(initial.length, Math.min(INITIAL_BUFFER_SIZE, maxHeadSize));
  let buf = size === INITIAL_BUFFER_SIZE && spare.length > 0 ? spare.pop()! : new Uint8Array(size);
  buf.set(initial);
  let filled = initial.length;
  let searched = 0; // findHeadEnd has looked at buf[0, searched)

  while (true) {
    const end = findHeadEnd(buf, Math.max(searched - 3, 0), filled);
    searched = filled;
    if (end > maxHeadSize || (end === -1 && filled >= maxHeadSize)) {
      throw isResponse
        ? new HandshakeError(
          INVALID_RESPONSE,
          `the response head is longer than ${maxHeadSize} bytes`,
        )
        : new HandshakeError(
          431,
          `the request head is longer than ${maxHeadSize} bytes`,
        );
    }
    if (end !== -1) {
      return { head: buf.subarray(0, end), rest: filled > end ? buf.slice(end, filled) : EMPTY };
    }
    if (filled === buf.length) {
      const bigger = new Uint8Array(Math.min(buf.length * 2, maxHeadSize));
      bigger.set(buf.subarray(0, filled));
      buf = bigger;
    }
    const n = await abortable(conn.read(buf.subarray(filled)), signal);
    if (n === null) {
      if (filled === 0) return null;
      throw isResponse
        ? new HandshakeError(
          INVALID_RESPONSE,
          "the connection closed before the response head ended",
        )
        : new HandshakeError(
          400,
          "connection closed before the request head ended",
        );
    }
    filled += n;
  }
}

/** Writes all of `data`, looping over partial writes. */
export async function writeAll(conn: Writer, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const n = await conn.write(data.subarray(off));
    if (n <= 0) throw new Error("write made no progress");
    off += n;
  }
}

const encoder = new TextEncoder();

/**
 * Writes all of `text` as UTF-8. Text that fits is encoded into one of the
 * process's free 4 KiB buffers, given back once written, rather than into
 * a new one: a server writes a 101 response for every connection.
 */
export async function writeText(conn: Writer, text: string): Promise<void> {
  if (text.length * 3 > smallBuffers.size) return await writeAll(conn, encoder.encode(text));
  const buf = smallBuffers.take();
  const { written } = encoder.encodeInto(text, buf);
  try {
    await writeAll(conn, buf.subarray(0, written));
  } finally {
    smallBuffers.give(buf);
  }
}
