/**
 * The server's side of the opening handshake (RFC 6455 §4.2), as pure
 * functions: check an upgrade request against the RFC and the policy
 * (origins, subprotocols), and build the 101 that accepts it. The head is
 * read and parsed by `lib/http` (`readHead()`, `parseRequestHead()`); a
 * refusal is answered with its `buildErrorResponse()`.
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
 * (The client's side, `checkUpgradeResponse()` and the request it answers,
 * is in `client_handshake.ts`.) Refusals are thrown as
 * {@linkcode HandshakeError}, whose status is the HTTP status to answer
 * with.
 *
 * @module
 */

import { sha1Base64 } from "./sha1.ts";
import { HandshakeError } from "../http/errors.ts";
import { HTTP_1_0, type RequestHead } from "../http/head.ts";
import {
  BASE64_CHAR,
  isDigits,
  isToken,
  listHasToken,
  parseOrigin,
  span,
  splitList,
} from "../http/grammar.ts";

/** The GUID appended to the client's key before hashing (RFC 6455 §1.3). */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The only protocol version we speak (RFC 6455 §4.1 item 9, §4.4). */
export const WEBSOCKET_VERSION = "13";

/** A base64 encoding of 16 bytes: 22 characters and `==` (RFC 4648 §4). */
function isKey(key: string): boolean {
  return key.length === 24 && span(key, 0, BASE64_CHAR) === 22 && key.endsWith("==");
}

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
  protocols?: string[];
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
 * 505 for HTTP/1.0; 405 with `Allow: GET` for another method; 400 for a missing Host, Upgrade
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
  if (head.version === HTTP_1_0) {
    // RFC 6455 §4.2.1: "An HTTP/1.1 or higher GET request"; 505 says so (RFC 9110 §15.6.6).
    throw new HandshakeError(505, `WebSocket needs HTTP/1.1 or higher, not ${head.version}`);
  }
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
  const supported = policy.protocols ?? [];
  const protocol = offered.find((p) => supported.includes(p)) ?? null;
  return { key, protocol };
}

/** The Sec-WebSocket-Accept value: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2 item 5.4). */
export function computeAcceptKey(key: string): string {
  return sha1Base64(key + WEBSOCKET_GUID);
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
    (extensions === "" ? "" : `Sec-WebSocket-Extensions: ${extensions}\r\n`) + "\r\n";
}
