/**
 * Finding and parsing an HTTP/1.1 head (RFC 9112 §2–§5), strictly, as pure
 * functions: where a head ends in a buffer, and the request or response it
 * holds. A malformed head throws a {@linkcode HandshakeError}: 400 (or 505)
 * for a request, {@linkcode INVALID_RESPONSE} for a response.
 *
 * Line endings (RFC 9112 §2.2). A recipient may either read a bare LF as a
 * line terminator or refuse the message. We refuse, on both sides: a proxy in
 * front of us that splits lines differently could otherwise smuggle a field
 * past it, and every client we know of sends CRLF. But the end of such a head
 * must still be *found*, or it would sit in readHead() until the handshake
 * timeout, so findHeadEnd() also stops at LF LF and LF CR LF, and the parsers
 * then refuse the head at once with "lines must end in CRLF". A bare CR
 * (RFC 9112 §2.2: invalid or read as SP) is refused the same way.
 *
 * @module
 */

import { HandshakeError, INVALID_RESPONSE } from "./errors.ts";
import { Fields } from "./fields.ts";
import { DIGIT, is, isFieldValue, isHost, isOriginForm, isToken, trimOws } from "./grammar.ts";

/**
 * The largest request or response head we accept, in bytes (RFC 9112 §2.3,
 * RFC 6585 §5). A browser's upgrade request is well under 1 KiB even with a
 * few cookies; 8 KiB bounds the memory a pending handshake may hold and
 * matches Apache's 8190-byte field limit and Node.js's long-time default.
 */
export const DEFAULT_MAX_HEAD_SIZE = 8 * 1024;

/** Maps each byte to the code point of the same value, so obs-text survives. */
function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    // apply() takes the typed array as it is: about 5x faster than spreading
    // it. (TextDecoder's "latin1" is windows-1252, which remaps 0x80–0x9f.)
    const chunk = bytes.subarray(i, i + 4096) as unknown as number[];
    s += String.fromCharCode.apply(null, chunk);
  }
  return s;
}

const CR = 0x0d;
const LF = 0x0a;

/** Why a head whose lines end in a bare LF is refused (RFC 9112 §2.2). */
const BARE_LF = "a line ends in a bare LF; lines must end in CRLF";
/** Why a head holding a bare CR is refused (RFC 9112 §2.2). */
const BARE_CR = "a line holds a bare CR; lines must end in CRLF";

/**
 * Returns the index just past the first empty line in `buf[start, end)`, or -1
 * (RFC 9112 §2.1): past CRLFCRLF, and also past LF LF or LF CR LF, the ends
 * of a head with bare-LF lines, which the parsers then refuse (RFC 9112
 * §2.2). To search incrementally, pass where the last search stopped minus 3
 * (2 would do), so a terminator split across reads is still found.
 */
export function findHeadEnd(
  buf: Uint8Array,
  start: number,
  end: number,
): number {
  const stop = Math.min(end, buf.length);
  for (let i = Math.max(start, 0); i < stop - 1; i++) {
    if (buf[i] !== LF) continue;
    if (buf[i + 1] === LF) return i + 2;
    if (buf[i + 1] === CR && i + 2 < stop && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** A parsed request line and header section (RFC 9112 §3, §5). */
export interface RequestHead {
  /** The method, case-sensitive (RFC 9110 §9.1). */
  method: string;
  /** The request target, always origin-form: `/path?query` (RFC 9112 §3.2.1). */
  target: string;
  /** The HTTP version as sent, e.g. `HTTP/1.1` (RFC 9112 §2.3). */
  version: string;
  /** The header fields; names compare case-insensitively. */
  headers: Fields;
}

/** A parsed status line and header section (RFC 9112 §4, §5). */
export interface ResponseHead {
  /** The three-digit status code (RFC 9110 §15). */
  status: number;
  /** The reason phrase, possibly empty (RFC 9112 §4). */
  reason: string;
  /** The header fields; names compare case-insensitively. */
  headers: Fields;
}

/**
 * Splits a head into its start line and field lines. Refuses a bare LF or a
 * bare CR anywhere, and a head that does not end with CRLFCRLF.
 */
function splitHead(
  bytes: Uint8Array,
  fail: (message: string) => HandshakeError,
): string[] {
  const text = latin1(bytes);
  if (!text.endsWith("\r\n\r\n")) {
    if (text.endsWith("\n\n") || text.endsWith("\n\r\n")) throw fail(BARE_LF);
    throw fail("the head does not end with an empty line");
  }
  const lines = text.slice(0, -4).split("\r\n");
  // RFC 9112 §2.2: ignore empty lines received before the start line.
  let first = 0;
  while (first < lines.length && lines[first] === "") first++;
  if (first === lines.length) throw fail("the head is empty");
  for (let i = first; i < lines.length; i++) {
    if (lines[i].includes("\n")) throw fail(BARE_LF);
    if (lines[i].includes("\r")) throw fail(BARE_CR);
  }
  return lines.slice(first);
}

/** The header fields of a head, and how many field lines carried each name. */
interface ParsedFields {
  /** The fields; lines with the same name are one comma-separated list (RFC 9110 §5.3). */
  headers: Fields;
  /** Field lines per lowercase name. */
  lineCounts: Map<string, number>;
}

/**
 * Parses field lines strictly (RFC 9112 §5): a token name, no whitespace
 * before the colon, only field-value characters. An obs-fold line is refused,
 * or, when `unfold` is set (a user agent reading a response, RFC 9112 §5.2),
 * joined to the previous value with one SP.
 */
function parseFields(
  lines: string[],
  fail: (message: string) => HandshakeError,
  unfold: boolean,
): ParsedFields {
  // A folded value is kept in parts and joined once, so many folds stay linear.
  const fields: { name: string; parts: string[] }[] = [];
  const lineCounts = new Map<string, number>();
  for (const line of lines) {
    if (line[0] === " " || line[0] === "\t") {
      if (!unfold || fields.length === 0) {
        throw fail("obsolete line folding (obs-fold) is not allowed");
      }
      const prev = fields[fields.length - 1];
      const more = trimOws(line);
      if (!isFieldValue(more)) {
        throw fail(`the ${prev.name} header holds a control character`);
      }
      prev.parts.push(more);
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw fail("a header line has no field name and colon");
    const name = line.slice(0, colon);
    const last = name[name.length - 1];
    if (last === " " || last === "\t") {
      throw fail(
        `whitespace between the field name "${name.trim()}" and the colon`,
      );
    }
    if (!isToken(name)) throw fail("a header field name is not a token");
    const value = trimOws(line.slice(colon + 1));
    if (!isFieldValue(value)) {
      throw fail(`the ${name} header holds a control character`);
    }
    const lower = name.toLowerCase();
    lineCounts.set(lower, (lineCounts.get(lower) ?? 0) + 1);
    fields.push({ name, parts: [value] });
  }
  const headers = new Fields();
  for (const { name, parts } of fields) {
    headers.append(name, parts.length === 1 ? parts[0] : parts.filter((p) => p !== "").join(" "));
  }
  return { headers, lineCounts };
}

/**
 * Request fields that must not appear on more than one line, as lowercase
 * name and display name. Host is one value (RFC 9112 §3.2); so are the key
 * (RFC 6455 §11.3.1) and the version (§11.3.5: "MUST NOT appear more than
 * once in an HTTP request"; a client wanting another version retries with it,
 * §4.4, rather than listing several).
 */
const SINGLE_REQUEST_FIELDS: readonly (readonly [string, string])[] = [
  ["host", "Host"],
  ["sec-websocket-key", "Sec-WebSocket-Key"],
  ["sec-websocket-version", "Sec-WebSocket-Version"],
];

/** The one version below HTTP/1.1 that is read (RFC 1945); it cannot upgrade (RFC 6455 §4.2.1). */
export const HTTP_1_0 = "HTTP/1.0";

/**
 * Parses a request head, CRLFCRLF included, strictly per RFC 9112 §3 and §5.
 * Malformed syntax, a bare LF or CR (RFC 9112 §2.2: "lines must end in
 * CRLF"), obs-fold, whitespace before a colon, a target that is not
 * origin-form, a missing Host in HTTP/1.1, or a Host, Sec-WebSocket-Key or
 * Sec-WebSocket-Version on more than one line throw a HandshakeError with
 * 400. HTTP/1.0 is read (load balancers' health checks send it, often
 * without Host, which it does not require); the WebSocket upgrade refuses it
 * with 505 (`checkUpgradeRequest`). Another major version throws 505 (RFC
 * 9110 §15.6.6). HTTP/1.2+ is read as 1.1. Linear in the head's size,
 * whatever its bytes.
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  const fail = (message: string) => new HandshakeError(400, message);
  const [requestLine, ...fieldLines] = splitHead(bytes, fail);

  const parts = requestLine.split(" ");
  if (parts.length !== 3 || parts.some((p) => p === "")) {
    throw fail("the request line is not `method SP target SP version`");
  }
  const [method, target, version] = parts;
  if (!isToken(method)) throw fail("the method is not a token");
  if (!isOriginForm(target)) {
    throw fail("the request target must be a path like /chat?room=1");
  }
  // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3)
  if (
    version.length !== 8 || !version.startsWith("HTTP/") ||
    !is(version, 5, DIGIT) || version[6] !== "." || !is(version, 7, DIGIT)
  ) {
    throw fail("the HTTP version is malformed");
  }
  if (version[5] !== "1") {
    throw new HandshakeError(505, `HTTP/1.x only, not ${version}`);
  }

  const { headers, lineCounts } = parseFields(fieldLines, fail, false);
  // RFC 9112 §3.2: a client MUST send Host in HTTP/1.1; HTTP/1.0 had none.
  if (!lineCounts.has("host") && version !== HTTP_1_0) throw fail("the Host header is missing");
  for (const [lower, name] of SINGLE_REQUEST_FIELDS) {
    if ((lineCounts.get(lower) ?? 0) > 1) {
      throw fail(`the ${name} header appears more than once`);
    }
  }
  if (lineCounts.has("host") && !isHost(headers.get("host")!)) {
    throw fail("the Host header is invalid");
  }
  return { method, target, version, headers };
}

/**
 * Reads `HTTP/1.x SP 3DIGIT [ SP reason-phrase ]` (RFC 9112 §4); null when
 * malformed. The SP after the code is tolerated when missing, as many
 * clients do.
 */
function parseStatusLine(
  line: string,
): { status: number; reason: string } | null {
  if (
    !line.startsWith("HTTP/1.") || !is(line, 7, DIGIT) || line[8] !== " " ||
    !is(line, 9, DIGIT) || !is(line, 10, DIGIT) || !is(line, 11, DIGIT)
  ) {
    return null;
  }
  const status = Number(line.slice(9, 12));
  if (line.length === 12) return { status, reason: "" };
  const reason = line.slice(13);
  if (line[12] !== " " || !isFieldValue(reason)) return null;
  return { status, reason };
}

/**
 * Parses a response head, CRLFCRLF included (RFC 9112 §4, §5). Malformed
 * syntax, including a bare LF or CR (RFC 9112 §2.2), throws a HandshakeError
 * with {@linkcode INVALID_RESPONSE}. Linear in the head's size.
 */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const fail = (message: string) =>
    new HandshakeError(
      INVALID_RESPONSE,
      `invalid response from the server: ${message}`,
    );
  const [statusLine, ...fieldLines] = splitHead(bytes, fail);
  const start = parseStatusLine(statusLine);
  if (start === null) throw fail("the status line is malformed");
  const { headers } = parseFields(fieldLines, fail, true);
  return { status: start.status, reason: start.reason, headers };
}
