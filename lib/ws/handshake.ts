/**
 * The HTTP/1.1 opening handshake of RFC 6455 §4, both sides, as pure
 * functions: parse a head, check it, build the answer. No I/O happens here;
 * `lib/http.ts` reads and writes the bytes.
 *
 * ```
 *   client                                   server
 *     | GET /path HTTP/1.1                     |
 *     | Upgrade: websocket, Sec-WebSocket-Key  |  parseRequestHead()
 *     |--------------------------------------->|  checkUpgradeRequest()
 *     |                                        |
 *     | HTTP/1.1 101 Switching Protocols       |  buildUpgradeResponse()
 *     | Sec-WebSocket-Accept: base64(SHA-1)    |  or buildErrorResponse()
 *     |<---------------------------------------|
 *  parseResponseHead()                         |
 *  checkUpgradeResponse()                      |
 *     |<============ WebSocket frames ========>|
 * ```
 *
 * Refusals are thrown as {@linkcode HandshakeError}. On the server side its
 * status is the HTTP status to answer with. On the client side a server
 * refusal carries the server's status, and a response that breaks RFC 6455
 * §4.1 carries {@linkcode INVALID_RESPONSE} (0), since no HTTP status
 * describes it.
 *
 * @module
 */

import { sha1 } from "./sha1.ts";
import { HandshakeError } from "./errors.ts";

/** The GUID appended to the client's key before hashing (RFC 6455 §1.3). */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The only protocol version we speak (RFC 6455 §4.1 item 9, §4.4). */
export const WEBSOCKET_VERSION = "13";

/**
 * The largest request or response head we accept, in bytes (RFC 9112 §2.3,
 * RFC 6585 §5). A browser's upgrade request is well under 1 KiB even with a
 * few cookies; 8 KiB bounds the memory a pending handshake may hold and
 * matches Apache's 8190-byte field limit and Node.js's long-time default.
 */
export const DEFAULT_MAX_HEAD_SIZE = 8 * 1024;

/**
 * The {@linkcode HandshakeError.status} a client uses when the server's
 * response breaks RFC 6455 §4.1 (wrong accept value, missing Upgrade, …):
 * it is not a refusal by the server, so no HTTP status fits.
 */
export const INVALID_RESPONSE = 0;

// ---------------------------------------------------------------------------
// Grammar (RFC 9110 §5.6, RFC 9112 §2–§5)
//
// Everything below that reads untrusted bytes (request and response heads,
// and every value taken from them) scans with index loops over a table of
// character classes: no regular expression, so no backtracking, and each
// check is linear in its input. V8's regex engine backtracks; a pattern as
// innocent as the trim `/^[ \t]+|[ \t]+$/g` is quadratic on `a`, 7,900
// spaces, `b`: 60–100 ms of CPU per head, so 13 such requests a second
// saturate a core.

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = 1 << 0;
/** A field-value character: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5). */
const FIELD_CHAR = 1 << 1;
/** pchar without pct-encoded, plus `/` and `?` (RFC 3986 §3.3, §3.4). */
const PATH_CHAR = 1 << 2;
/** unreserved / sub-delims: reg-name without pct-encoded (RFC 3986 §3.2.2). */
const REG_NAME_CHAR = 1 << 3;
/** What an IP-literal may hold between its brackets (RFC 3986 §3.2.2), loosely. */
const IP_LITERAL_CHAR = 1 << 4;
/** HEXDIG (RFC 5234 §B.1). */
const HEXDIG = 1 << 5;
/** DIGIT (RFC 5234 §B.1). */
const DIGIT = 1 << 6;
/** ALPHA (RFC 5234 §B.1). */
const ALPHA = 1 << 7;
/** A scheme character after the first (RFC 3986 §3.1). */
const SCHEME_CHAR = 1 << 8;
/** What the host[:port] of a serialized origin may hold (RFC 6454 §6.2), loosely. */
const ORIGIN_HOST_CHAR = 1 << 9;
/** The base64 alphabet (RFC 4648 §4). */
const BASE64_CHAR = 1 << 10;

/** The classes of each Latin-1 code unit; code units above 0xff are in none. */
const CLASSES: Uint16Array = (() => {
  const table = new Uint16Array(256);
  const add = (chars: string, cls: number) => {
    for (const c of chars) table[c.charCodeAt(0)] |= cls;
  };
  const range = (from: number, to: number) => {
    let s = "";
    for (let c = from; c <= to; c++) s += String.fromCharCode(c);
    return s;
  };
  const digit = range(0x30, 0x39);
  const alpha = range(0x41, 0x5a) + range(0x61, 0x7a);
  const unreserved = alpha + digit + "-._~";
  const subDelims = "!$&'()*+,;=";
  add(alpha + digit + "!#$%&'*+-.^_`|~", TCHAR);
  add("\t" + range(0x20, 0x7e) + range(0x80, 0xff), FIELD_CHAR);
  add(unreserved + subDelims + ":@/?", PATH_CHAR);
  add(unreserved + subDelims, REG_NAME_CHAR);
  add(digit + "ABCDEFabcdef:.", IP_LITERAL_CHAR);
  add(digit + "ABCDEFabcdef", HEXDIG);
  add(digit, DIGIT);
  add(alpha, ALPHA);
  add(alpha + digit + "+.-", SCHEME_CHAR);
  add(unreserved + subDelims + "%:[]", ORIGIN_HOST_CHAR);
  add(alpha + digit + "+/", BASE64_CHAR);
  return table;
})();

/** Whether the code unit at `s[i]` is in class `cls`; false past the end. */
function is(s: string, i: number, cls: number): boolean {
  const c = s.charCodeAt(i); // NaN past the end, and NaN <= 0xff is false
  return c <= 0xff && (CLASSES[c] & cls) !== 0;
}

/** The index of the first code unit at or after `i` that is not in `cls`. */
function span(s: string, i: number, cls: number): number {
  while (is(s, i, cls)) i++;
  return i;
}

/** Whether all of `s` is in `cls` (true for ""). */
function isAll(s: string, cls: number): boolean {
  return span(s, 0, cls) === s.length;
}

/** token = 1*tchar (RFC 9110 §5.6.2). */
function isToken(s: string): boolean {
  return s.length > 0 && isAll(s, TCHAR);
}

/** field-value characters only: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5). */
function isFieldValue(s: string): boolean {
  return isAll(s, FIELD_CHAR);
}

/** The index past a run of `cls` characters and pct-encoded triplets (RFC 3986 §2.1). */
function spanPct(s: string, i: number, cls: number): number {
  while (true) {
    if (is(s, i, cls)) i++;
    else if (s[i] === "%" && is(s, i + 1, HEXDIG) && is(s, i + 2, HEXDIG)) i += 3;
    else return i;
  }
}

/** origin-form = absolute-path [ "?" query ] (RFC 9112 §3.2.1, RFC 3986). */
function isOriginForm(target: string): boolean {
  return target[0] === "/" && spanPct(target, 1, PATH_CHAR) === target.length;
}

/**
 * Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP
 * literal in brackets or a possibly empty reg-name, then an optional port.
 */
function isHost(host: string): boolean {
  let i: number;
  if (host[0] === "[") {
    i = span(host, 1, IP_LITERAL_CHAR);
    if (i === 1 || host[i] !== "]") return false;
    i++;
  } else {
    i = spanPct(host, 0, REG_NAME_CHAR);
  }
  if (host[i] === ":") i = span(host, i + 1, DIGIT);
  return i === host.length;
}

/**
 * Splits a serialized origin, `scheme "://" host [ ":" port ]` (RFC 6454
 * §6.2), into its scheme and its `host[:port]`; null when it is not one.
 */
function parseOrigin(origin: string): { scheme: string; host: string } | null {
  if (!is(origin, 0, ALPHA)) return null;
  const colon = span(origin, 1, SCHEME_CHAR);
  if (!origin.startsWith("://", colon)) return null;
  const start = colon + 3;
  if (start === origin.length || span(origin, start, ORIGIN_HOST_CHAR) !== origin.length) {
    return null;
  }
  return { scheme: origin.slice(0, colon), host: origin.slice(start) };
}

/** A base64 encoding of 16 bytes: 22 characters and `==` (RFC 4648 §4). */
function isKey(key: string): boolean {
  return key.length === 24 && span(key, 0, BASE64_CHAR) === 22 && key.endsWith("==");
}

/** Whether `s` is 1 to `max` DIGITs. */
function isDigits(s: string, max: number): boolean {
  return s.length >= 1 && s.length <= max && isAll(s, DIGIT);
}

/** `s` without leading and trailing OWS, i.e. SP and HTAB (RFC 9110 §5.6.3). */
function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s[start] === " " || s[start] === "\t")) start++;
  while (end > start && (s[end - 1] === " " || s[end - 1] === "\t")) end--;
  return s.slice(start, end);
}

/** Headers the handshake itself sets, which a caller may not override. */
const HANDSHAKE_HEADERS = new Set([
  "host",
  "upgrade",
  "connection",
  "origin",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "sec-websocket-accept",
  "content-length",
  "transfer-encoding",
]);

/** Reason phrases for the statuses this project sends (RFC 9110 §15). */
const REASON_PHRASES: Readonly<Record<number, string>> = {
  101: "Switching Protocols",
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large", // RFC 6585 §5
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** The reason phrase for a status (RFC 9110 §15), or "" for one not in our table. */
export function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? "";
}

/** Splits a list-valued field into its elements, dropping empty ones (RFC 9110 §5.6.1). */
function splitList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Whether a list-valued field holds `token`, ASCII case-insensitively. */
function listHasToken(value: string | null, token: string): boolean {
  return splitList(value).some((e) => e.toLowerCase() === token);
}

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

// ---------------------------------------------------------------------------
// Finding and parsing a head
//
// Line endings (RFC 9112 §2.2). A recipient may either read a bare LF as a
// line terminator or refuse the message. We refuse, on both sides: a proxy in
// front of us that splits lines differently could otherwise smuggle a field
// past it, and every client we know of sends CRLF. But the end of such a head
// must still be *found*, or it would sit in readHead() until the handshake
// timeout, so findHeadEnd() also stops at LF LF and LF CR LF, and the parsers
// then refuse the head at once with "lines must end in CRLF". A bare CR
// (RFC 9112 §2.2: invalid or read as SP) is refused the same way.

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
  headers: Headers;
}

/** A parsed status line and header section (RFC 9112 §4, §5). */
export interface ResponseHead {
  /** The three-digit status code (RFC 9110 §15). */
  status: number;
  /** The reason phrase, possibly empty (RFC 9112 §4). */
  reason: string;
  /** The header fields; names compare case-insensitively. */
  headers: Headers;
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
interface Fields {
  /** The fields; lines with the same name are one comma-separated list (RFC 9110 §5.3). */
  headers: Headers;
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
): Fields {
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
  const headers = new Headers();
  for (const { name, parts } of fields) {
    headers.append(name, parts.filter((p) => p !== "").join(" "));
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

/**
 * Parses a request head, CRLFCRLF included, strictly per RFC 9112 §3 and §5.
 * Malformed syntax, a bare LF or CR (RFC 9112 §2.2: "lines must end in
 * CRLF"), obs-fold, whitespace before a colon, a target that is not
 * origin-form, a missing Host, or a Host, Sec-WebSocket-Key or
 * Sec-WebSocket-Version on more than one line throw a HandshakeError with
 * 400. A well-formed version below HTTP/1.1 or of another major version
 * throws 505: RFC 6455 §4.2.1 requires HTTP/1.1 or higher, and 505 says
 * exactly that (RFC 9110 §15.6.6). HTTP/1.2+ is read as 1.1. Linear in the
 * head's size, whatever its bytes.
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
  if (version[5] !== "1" || version[7] === "0") {
    throw new HandshakeError(
      505,
      `WebSocket needs HTTP/1.1 or higher, not ${version}`,
    );
  }

  const { headers, lineCounts } = parseFields(fieldLines, fail, false);
  if (!lineCounts.has("host")) throw fail("the Host header is missing");
  for (const [lower, name] of SINGLE_REQUEST_FIELDS) {
    if ((lineCounts.get(lower) ?? 0) > 1) {
      throw fail(`the ${name} header appears more than once`);
    }
  }
  if (!isHost(headers.get("host")!)) {
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

// ---------------------------------------------------------------------------
// Server side: RFC 6455 §4.2

/** What a server accepts beyond the defaults (RFC 6455 §4.2.2, RFC 6454). */
export interface UpgradePolicy {
  /**
   * Extra allowed origins. A pattern without `://` matches the Origin's
   * `host[:port]`; one with `://` matches `scheme://host[:port]`. `*` matches
   * any run of characters within it, case-insensitively: `*.example.com`,
   * `localhost:*`, `https://*.example.com`. A same-host Origin is always
   * allowed. The pattern `null` allows exactly `Origin: null` (what a
   * browser sends from a `file://` page, a sandboxed iframe or after a
   * cross-origin redirect; RFC 6454 §7.3); no other pattern matches it.
   */
  origins?: string[];
  /** The subprotocols the server speaks (RFC 6455 §1.9). */
  subprotocols?: string[];
}

/**
 * Whether `subject` matches the origin glob `pattern` whole, ASCII
 * case-insensitively, each `*` standing for any run of characters. This is
 * the greedy matcher with one backtrack point (the last `*`), so it takes at
 * most |pattern| × |subject| steps however many `*` there are; the RegExp of
 * `.*`s it replaces backtracked polynomially in the Origin's length
 * (`*.*.*.x` against an Origin of 2,000 dots took 4 s of CPU).
 */
function globMatch(pattern: string, subject: string): boolean {
  const fold = (c: number) => (c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  let p = 0;
  let s = 0;
  let star = -1; // the index of the last `*` seen in pattern
  let mark = 0; // where in subject that `*` now stops
  while (s < subject.length) {
    if (pattern[p] === "*") {
      star = p++;
      mark = s;
    } else if (
      p < pattern.length &&
      fold(pattern.charCodeAt(p)) === fold(subject.charCodeAt(s))
    ) {
      p++;
      s++;
    } else if (star !== -1) {
      p = star + 1;
      s = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * Applies the origin rule (RFC 6455 §4.2.2 item 4, §10.2): no Origin is
 * allowed; an Origin whose host equals Host case-insensitively is allowed
 * (as gorilla and coder/websocket do); otherwise a policy pattern must match.
 * `Origin: null` (RFC 6454 §7.3: an opaque origin, such as a `file://` page
 * or a sandboxed iframe) is allowed only by the exact pattern `null`: it has
 * no host, so neither the same-host rule nor a glob (not even `*`) can match
 * it. Other unparsable origins are refused with 403.
 */
function checkOrigin(
  origin: string | null,
  host: string,
  patterns: string[],
): void {
  if (origin === null) return;
  if (origin === "null") {
    if (patterns.includes("null")) return;
    throw new HandshakeError(
      403,
      "the origin null is not allowed (allow it with the pattern null)",
    );
  }
  const parsed = parseOrigin(origin);
  if (parsed === null) {
    throw new HandshakeError(
      403,
      "the Origin header is not a scheme://host origin",
    );
  }
  const scheme = parsed.scheme.toLowerCase();
  const originHost = parsed.host.toLowerCase();
  if (originHost === host.toLowerCase()) return;
  for (const pattern of patterns) {
    if (pattern === "null") continue; // it means `Origin: null`, never a host named null
    const subject = pattern.includes("://") ? `${scheme}://${originHost}` : originHost;
    if (globMatch(pattern, subject)) return;
  }
  throw new HandshakeError(403, `the origin ${origin} is not allowed`);
}

/**
 * Checks an upgrade request against RFC 6455 §4.2.1 and the policy, and
 * returns the client's key and the chosen subprotocol. Throws HandshakeError:
 * 405 with `Allow: GET` for another method; 400 for a missing Host, Upgrade
 * without `websocket`, Connection without `upgrade`, a key that is not 16
 * base64-encoded bytes, a missing or non-numeric Sec-WebSocket-Version (as ws
 * does), or a body (its bytes would be read as frames); 426 with
 * `Sec-WebSocket-Version: 13` for another version number (§4.4); 403 for a
 * refused origin. Upgrade (RFC 9110 §7.8), Connection (§7.6.1) and
 * Sec-WebSocket-Protocol (RFC 6455 §11.3.4) are lists, and lines of the same
 * name are one list (RFC 9110 §5.3): `Upgrade: foo` then `Upgrade: websocket`
 * is an upgrade. The subprotocol is the first one the client offers, in the
 * client's order of preference (§4.1 item 10), that the server speaks; null
 * when none is shared, and then no header goes in the response.
 */
export function checkUpgradeRequest(
  head: RequestHead,
  policy: UpgradePolicy = {},
): { key: string; protocol: string | null } {
  const h = head.headers;
  if (head.method !== "GET") {
    throw new HandshakeError(
      405,
      `a WebSocket upgrade must use GET, not ${head.method}`,
      { Allow: "GET" },
    );
  }
  const host = h.get("host");
  if (host === null) {
    throw new HandshakeError(400, "the Host header is missing");
  }
  if (!listHasToken(h.get("upgrade"), "websocket")) {
    throw new HandshakeError(
      400,
      "the Upgrade header must contain websocket",
    );
  }
  if (!listHasToken(h.get("connection"), "upgrade")) {
    throw new HandshakeError(
      400,
      "the Connection header must contain upgrade",
    );
  }
  const version = h.get("sec-websocket-version");
  if (version === null || !isDigits(version, 3)) {
    throw new HandshakeError(
      400,
      "the Sec-WebSocket-Version header is missing or not a number",
    );
  }
  if (version !== WEBSOCKET_VERSION) {
    throw new HandshakeError(
      426,
      `WebSocket version ${version} is not supported; use 13`,
      { "Sec-WebSocket-Version": WEBSOCKET_VERSION },
    );
  }
  const key = h.get("sec-websocket-key");
  if (key === null || !isKey(key) || atob(key).length !== 16) {
    throw new HandshakeError(
      400,
      "the Sec-WebSocket-Key header must be 16 bytes in base64",
    );
  }
  if (
    h.has("transfer-encoding") ||
    (h.has("content-length") && h.get("content-length") !== "0")
  ) {
    throw new HandshakeError(400, "an upgrade request must not have a body");
  }

  checkOrigin(h.get("origin"), host, policy.origins ?? []);

  const offered = splitList(h.get("sec-websocket-protocol"));
  if (!offered.every(isToken)) {
    throw new HandshakeError(
      400,
      "the Sec-WebSocket-Protocol header must be a list of tokens",
    );
  }
  const supported = policy.subprotocols ?? [];
  const protocol = offered.find((p) => supported.includes(p)) ?? null;
  return { key, protocol };
}

/** The Sec-WebSocket-Accept value: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2 item 5.4). */
export function computeAcceptKey(key: string): string {
  return btoa(String.fromCharCode(...sha1(key + WEBSOCKET_GUID)));
}

/** The server's 101 response that completes the handshake (RFC 6455 §4.2.2 item 5). */
export function buildUpgradeResponse(
  key: string,
  protocol: string | null,
  extensions = "",
): string {
  if (protocol !== null && !isToken(protocol)) {
    throw new TypeError(
      `subprotocol ${JSON.stringify(protocol)} is not a token`,
    );
  }
  return "HTTP/1.1 101 Switching Protocols\r\n" +
    "Upgrade: websocket\r\n" +
    "Connection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${computeAcceptKey(key)}\r\n` +
    (protocol === null ? "" : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
    (extensions === "" ? "" : `Sec-WebSocket-Extensions: ${extensions}\r\n`) +
    "\r\n";
}

/**
 * The head of a plain HTTP/1.1 response (RFC 9112 §4, §6.3) for a body of
 * `contentLength` bytes: status line with reason phrase, `Content-Type`
 * (text/plain UTF-8 unless given), `Content-Length`, and `Connection: close`
 * unless `opts.keepAlive` is true. Extra headers may not set Content-Length
 * or Connection, nor hold CR or LF (TypeError).
 */
export function buildResponseHead(
  status: number,
  contentLength: number,
  headers: Record<string, string> = {},
  opts: { keepAlive?: boolean } = {},
): string {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RangeError(`${status} is not an HTTP status code`);
  }
  const fields: [string, string][] = [];
  let hasContentType = false;
  for (const [name, value] of Object.entries(headers)) {
    if (!isToken(name) || !isFieldValue(value)) {
      throw new TypeError(`invalid response header ${JSON.stringify(name)}`);
    }
    const lower = name.toLowerCase();
    if (lower === "content-length" || lower === "connection") {
      throw new TypeError(`${name} is set by buildHttpResponse()`);
    }
    if (lower === "content-type") hasContentType = true;
    fields.push([name, value]);
  }
  if (!hasContentType) {
    fields.unshift(["Content-Type", "text/plain; charset=utf-8"]);
  }
  fields.push(["Content-Length", String(contentLength)]);
  if (opts.keepAlive !== true) fields.push(["Connection", "close"]);
  const reason = reasonPhrase(status);
  return `HTTP/1.1 ${status} ${reason}\r\n` +
    fields.map(([n, v]) => `${n}: ${v}\r\n`).join("") +
    "\r\n";
}

/**
 * A complete plain HTTP/1.1 response (RFC 9112 §4, §6.3): status line with
 * reason phrase, `Content-Type` (text/plain UTF-8 unless given),
 * `Content-Length` in UTF-8 bytes, and `Connection: close` unless
 * `opts.keepAlive` is true. Extra headers may not set Content-Length or
 * Connection, nor hold CR or LF.
 */
export function buildHttpResponse(
  status: number,
  body: string,
  headers: Record<string, string> = {},
  opts: { keepAlive?: boolean } = {},
): string {
  return buildResponseHead(status, new TextEncoder().encode(body).length, headers, opts) + body;
}

/** The refusal for a HandshakeError: its status, headers, and message as the body (RFC 6455 §4.2.1). */
export function buildErrorResponse(err: HandshakeError): string {
  return buildHttpResponse(err.status, `${err.message}\n`, err.headers);
}

// ---------------------------------------------------------------------------
// Client side: RFC 6455 §4.1

/** A fresh Sec-WebSocket-Key: 16 random bytes in base64 (RFC 6455 §4.1 item 7). */
export function generateKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
}

/** Options for {@linkcode buildUpgradeRequest}. */
export interface UpgradeRequestOptions {
  /** Extra header fields, e.g. `["Authorization", "Bearer x"]`. */
  headers?: [string, string][];
  /** The Origin to send (RFC 6455 §4.1 item 8, RFC 6454). */
  origin?: string;
  /** Subprotocols to offer, most preferred first (RFC 6455 §4.1 item 10). */
  subprotocols?: string[];
  /** Extensions to offer, as a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1). */
  extensions?: string;
}

/**
 * The client's opening handshake (RFC 6455 §4.1): `GET path?query HTTP/1.1`,
 * Host with the port only when it is not the scheme's default and IPv6
 * literals in brackets (§3), then Upgrade, Connection, Sec-WebSocket-Key,
 * Sec-WebSocket-Version, and the optional Origin, Sec-WebSocket-Protocol and
 * extra headers. Throws a TypeError for a non-ws(s) URL, a fragment (§3),
 * credentials in the URL, a header with CR/LF or a non-token name, a header
 * that would override the handshake's own, or a subprotocol that is not a
 * token or is offered twice.
 */
export function buildUpgradeRequest(
  url: URL,
  key: string,
  opts: UpgradeRequestOptions = {},
): string {
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`${url.href} is not a ws:// or wss:// URL`);
  }
  if (url.hash !== "" || url.href.includes("#")) {
    throw new TypeError(
      `${url.href} has a fragment; WebSocket URLs may not have one (RFC 6455 §3)`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError(
      "credentials in the URL are not sent; pass an Authorization header instead",
    );
  }
  // WHATWG URL drops the default port (80 for ws, 443 for wss) and keeps an
  // IPv6 literal in brackets, which is exactly the Host of RFC 6455 §4.1.
  const host = url.host;

  const lines = [
    `GET ${url.pathname || "/"}${url.search} HTTP/1.1`,
    `Host: ${host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    `Sec-WebSocket-Version: ${WEBSOCKET_VERSION}`,
  ];
  if (opts.origin !== undefined) {
    if (!isFieldValue(opts.origin) || opts.origin.trim() === "") {
      throw new TypeError("the origin must be one line of text");
    }
    lines.push(`Origin: ${opts.origin}`);
  }
  const protocols = opts.subprotocols ?? [];
  for (const [i, p] of protocols.entries()) {
    if (!isToken(p)) {
      throw new TypeError(`subprotocol ${JSON.stringify(p)} is not a token`);
    }
    if (protocols.indexOf(p) !== i) {
      throw new TypeError(`subprotocol ${p} is offered twice`);
    }
  }
  if (protocols.length > 0) {
    lines.push(`Sec-WebSocket-Protocol: ${protocols.join(", ")}`);
  }
  if (opts.extensions) lines.push(`Sec-WebSocket-Extensions: ${opts.extensions}`);
  for (const [name, value] of opts.headers ?? []) {
    if (!isToken(name)) {
      throw new TypeError(
        `header name ${JSON.stringify(name)} is not a valid HTTP token`,
      );
    }
    if (!isFieldValue(value)) {
      throw new TypeError(
        `the value of header ${name} holds CR, LF or another control character`,
      );
    }
    if (HANDSHAKE_HEADERS.has(name.toLowerCase())) {
      throw new TypeError(
        `header ${name} is set by the handshake and cannot be overridden`,
      );
    }
    lines.push(`${name}: ${value.trim()}`);
  }
  return lines.join("\r\n") + "\r\n\r\n";
}

/**
 * Checks the server's response against RFC 6455 §4.1 and returns the
 * accepted subprotocol, or null. A status other than 101 throws a
 * HandshakeError with that status ("server refused the upgrade: 403
 * Forbidden"); a 101 that breaks §4.1 throws one with
 * {@linkcode INVALID_RESPONSE}: an Upgrade list with any element other than
 * `websocket`, a Connection list without `upgrade`, a wrong accept value,
 * any extension, a subprotocol not offered. Field lines of the same name are
 * one list (RFC 9110 §5.3): `Upgrade: websocket` on two lines passes, as
 * does `Connection: keep-alive` then `Connection: Upgrade`; two
 * Sec-WebSocket-Accept or Sec-WebSocket-Protocol lines, which a response
 * must not repeat (§11.3.3, §11.3.4), fail. `body`, the start of a
 * refusal's body as far as the caller read it, goes into the error.
 */
export function checkUpgradeResponse(
  resp: ResponseHead,
  key: string,
  offered: { subprotocols?: string[]; extensions?: boolean } = {},
  body = "",
): { protocol: string | null } {
  if (resp.status !== 101) {
    const reason = resp.reason || reasonPhrase(resp.status);
    throw new HandshakeError(
      resp.status,
      `server refused the upgrade: ${resp.status}${reason ? ` ${reason}` : ""}`,
      {},
      body,
    );
  }
  const fail = (message: string) =>
    new HandshakeError(
      INVALID_RESPONSE,
      `invalid upgrade response: ${message}`,
    );
  const h = resp.headers;
  // §4.1: fail if Upgrade is missing or "contains a value that is not" an
  // ASCII case-insensitive match for websocket. Its lines form one list
  // (RFC 9110 §5.3, §7.8), so every element must be websocket.
  const upgrade = splitList(h.get("upgrade"));
  if (
    upgrade.length === 0 ||
    !upgrade.every((e) => e.toLowerCase() === "websocket")
  ) {
    throw fail("the Upgrade header is not websocket");
  }
  if (!listHasToken(h.get("connection"), "upgrade")) {
    throw fail("the Connection header does not contain upgrade");
  }
  if (h.get("sec-websocket-accept") !== computeAcceptKey(key)) {
    throw fail("Sec-WebSocket-Accept does not match the key we sent");
  }
  // What the server chose among offered extensions is the caller's to check.
  if (!offered.extensions && splitList(h.get("sec-websocket-extensions")).length > 0) {
    throw fail("the server chose an extension, but we offered none");
  }
  const protocol = h.get("sec-websocket-protocol");
  if (protocol === null) return { protocol: null };
  if (!(offered.subprotocols ?? []).includes(protocol)) {
    throw fail(
      `the server chose subprotocol ${protocol}, which we did not offer`,
    );
  }
  return { protocol };
}
