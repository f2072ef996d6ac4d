/**
 * The client's side of the server's answer: read the response head (and
 * tell a TLS server's bytes from HTTP), and, for a refused upgrade, the
 * start of its body, which often says why.
 *
 * @module
 */

import { HandshakeError } from "../ws/errors.ts";
import { DEFAULT_MAX_HEAD_SIZE, parseResponseHead, type ResponseHead } from "../http/head.ts";
import type { Fields } from "../http/fields.ts";
import { INVALID_RESPONSE } from "../http/errors.ts";
import { type Reader, readHead } from "../http/io.ts";
import { abortable } from "../async.ts";

/** The most of a refused upgrade's body that dial() reads into {@linkcode HandshakeError.body}. */
export const MAX_REFUSAL_BODY = 1024;

/** How long dial() waits for a refused upgrade's body once its head is in (ms). */
export const REFUSAL_BODY_WAIT_MS = 1_000;

/** The server's answer to an upgrade request. */
export interface UpgradeResponse {
  /** The parsed response head. */
  head: ResponseHead;
  /** Bytes that came after the head: the first frames of a 101, or the start of a refusal's body. */
  rest: Uint8Array;
  /** A refusal's body, as far as {@linkcode readRefusalBody} read it; "" for a 101. */
  body: string;
}

/**
 * Reads the answer to an upgrade request from `conn`, and a refusal's body
 * with it. Throws a {@linkcode HandshakeError} (status 0) when the head is
 * not HTTP, and one saying so when a `ws://` URL reached a TLS server; the
 * signal's reason when `signal` aborts.
 */
export async function readUpgradeResponse(
  conn: Deno.Conn,
  url: URL,
  signal: AbortSignal,
): Promise<UpgradeResponse> {
  const reader = new FirstBytes(conn);
  let got;
  let head;
  try {
    got = await readHead(reader, { maxHeadSize: DEFAULT_MAX_HEAD_SIZE, signal, kind: "response" });
    if (got) head = parseResponseHead(got.head);
  } catch (err) {
    if (url.protocol === "ws:" && reader.looksLikeTls()) throw tlsOnPlainUrl(url);
    throw err;
  }
  if (!got || !head) {
    throw new HandshakeError(
      INVALID_RESPONSE,
      "the server closed the connection before answering the upgrade",
    );
  }
  const body = head.status === 101
    ? ""
    : await readRefusalBody(conn, got.rest, head.headers, signal);
  return { head, rest: got.rest, body };
}

/** A reader that keeps the first bytes it reads, to tell a TLS server's answer from HTTP. */
class FirstBytes implements Reader {
  #conn: Reader;
  #first: number[] = [];

  constructor(conn: Reader) {
    this.#conn = conn;
  }

  async read(p: Uint8Array): Promise<number | null> {
    const n = await this.#conn.read(p);
    if (n !== null) {
      for (let i = 0; i < n && this.#first.length < 2; i++) this.#first.push(p[i]);
    }
    return n;
  }

  /** Whether the answer began as a TLS record does: a handshake (22) or an alert (21), version 3.x. */
  looksLikeTls(): boolean {
    const [type, major] = this.#first;
    return (type === 21 || type === 22) && major === 3;
  }
}

/** The error for a `ws://` URL whose server answered in TLS. */
function tlsOnPlainUrl(url: URL): HandshakeError {
  return new HandshakeError(
    INVALID_RESPONSE,
    `the server at ${url.host} speaks TLS, not plain HTTP: use wss:// instead of ws://`,
  );
}

/**
 * Reads the start of a refused upgrade's body: up to its Content-Length, or
 * to the end of the stream, at most {@linkcode MAX_REFUSAL_BODY} bytes and
 * {@linkcode REFUSAL_BODY_WAIT_MS}; a chunked body is unchunked as far as it
 * came. Decoded as UTF-8; "" when nothing came in time.
 */
async function readRefusalBody(
  conn: Reader,
  rest: Uint8Array,
  headers: Fields,
  signal: AbortSignal,
): Promise<string> {
  const length = Number(headers.get("content-length") ?? NaN);
  const want = Number.isSafeInteger(length) && length >= 0
    ? Math.min(length, MAX_REFUSAL_BODY)
    : MAX_REFUSAL_BODY;
  const buf = new Uint8Array(MAX_REFUSAL_BODY);
  let filled = Math.min(rest.length, want);
  buf.set(rest.subarray(0, filled));
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(REFUSAL_BODY_WAIT_MS)]);
  try {
    while (filled < want) {
      const n = await abortable(conn.read(buf.subarray(filled, want)), deadline);
      if (n === null) break;
      filled += n;
    }
  } catch {
    // Too slow, or the stream failed: what came is enough.
  }
  let body: Uint8Array = buf.subarray(0, filled);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = unchunk(body);
  return new TextDecoder().decode(body);
}

/** The data of a chunked body (RFC 9112 §7.1), as far as `bytes` holds it. */
function unchunk(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    let end = i;
    while (end < bytes.length && bytes[end] !== 0x0a) end++;
    const size = parseInt(new TextDecoder().decode(bytes.subarray(i, end)), 16);
    if (!(size > 0)) break;
    const start = end + 1;
    out.push(...bytes.subarray(start, Math.min(start + size, bytes.length)));
    i = start + size + 2;
  }
  return Uint8Array.from(out);
}
