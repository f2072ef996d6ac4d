/**
 * The grammar of HTTP/1.1 heads (RFC 9110 §5.6, RFC 9112 §2–§5, RFC 3986,
 * RFC 6454): character classes and the checks built on them, for field
 * names, field values, request targets, Host, Origin and lists.
 *
 * Everything here that reads untrusted bytes (request and response heads,
 * and every value taken from them) scans with index loops over a table of
 * character classes: no regular expression, so no backtracking, and each
 * check is linear in its input. V8's regex engine backtracks; a pattern as
 * innocent as the trim `/^[ \t]+|[ \t]+$/g` is quadratic on `a`, 7,900
 * spaces, `b`: 60–100 ms of CPU per head, so 13 such requests a second
 * saturate a core.
 *
 * @module
 */

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
export const DIGIT = 1 << 6;
/** ALPHA (RFC 5234 §B.1). */
const ALPHA = 1 << 7;
/** A scheme character after the first (RFC 3986 §3.1). */
const SCHEME_CHAR = 1 << 8;
/** What the host[:port] of a serialized origin may hold (RFC 6454 §6.2), loosely. */
const ORIGIN_HOST_CHAR = 1 << 9;
/** The base64 alphabet (RFC 4648 §4). */
export const BASE64_CHAR = 1 << 10;

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
export function is(s: string, i: number, cls: number): boolean {
  const c = s.charCodeAt(i); // NaN past the end, and NaN <= 0xff is false
  return c <= 0xff && (CLASSES[c] & cls) !== 0;
}

/** The index of the first code unit at or after `i` that is not in `cls`. */
export function span(s: string, i: number, cls: number): number {
  while (is(s, i, cls)) i++;
  return i;
}

/** Whether all of `s` is in `cls` (true for ""). */
function isAll(s: string, cls: number): boolean {
  return span(s, 0, cls) === s.length;
}

/** token = 1*tchar (RFC 9110 §5.6.2). */
export function isToken(s: string): boolean {
  return s.length > 0 && isAll(s, TCHAR);
}

/** field-value characters only: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5). */
export function isFieldValue(s: string): boolean {
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
export function isOriginForm(target: string): boolean {
  return target[0] === "/" && spanPct(target, 1, PATH_CHAR) === target.length;
}

/**
 * Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP
 * literal in brackets or a possibly empty reg-name, then an optional port.
 */
export function isHost(host: string): boolean {
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
export function parseOrigin(origin: string): { scheme: string; host: string } | null {
  if (!is(origin, 0, ALPHA)) return null;
  const colon = span(origin, 1, SCHEME_CHAR);
  if (!origin.startsWith("://", colon)) return null;
  const start = colon + 3;
  if (start === origin.length || span(origin, start, ORIGIN_HOST_CHAR) !== origin.length) {
    return null;
  }
  return { scheme: origin.slice(0, colon), host: origin.slice(start) };
}

/** Whether `s` is 1 to `max` DIGITs. */
export function isDigits(s: string, max: number): boolean {
  return s.length >= 1 && s.length <= max && isAll(s, DIGIT);
}

/** `s` without leading and trailing OWS, i.e. SP and HTAB (RFC 9110 §5.6.3). */
export function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s[start] === " " || s[start] === "\t")) start++;
  while (end > start && (s[end - 1] === " " || s[end - 1] === "\t")) end--;
  return s.slice(start, end);
}

/** Splits a list-valued field into its elements, dropping empty ones (RFC 9110 §5.6.1). */
export function splitList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Whether a list-valued field holds `token`, ASCII case-insensitively. */
export function listHasToken(value: string | null, token: string): boolean {
  return splitList(value).some((e) => e.toLowerCase() === token);
}

/**
 * `host:port` in authority form (RFC 3986 §3.2.2, RFC 9110 §9.3.6): an IPv6
 * address in brackets, as a CONNECT request and a Host header name it.
 */
export function authority(target: { hostname: string; port: number }): string {
  const host = target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname;
  return `${host}:${target.port}`;
}
