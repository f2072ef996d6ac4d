/**
 * The client's side of the opening handshake (RFC 6455 §4.1), as pure
 * functions: a fresh key, the upgrade request, and the check of the
 * server's answer (drawn in `server_handshake.ts`). The head is read and
 * parsed by `lib/http` (`readHead()`, `parseResponseHead()`).
 *
 * A server's refusal is thrown as a {@linkcode HandshakeError} with the
 * server's status; a response that breaks §4.1 as one with
 * {@linkcode INVALID_RESPONSE} (0), since no HTTP status describes it.
 *
 * @module
 */

import { HandshakeError, INVALID_RESPONSE } from "../http/errors.ts";
import type { ResponseHead } from "../http/head.ts";
import { reasonPhrase } from "../http/response.ts";
import { isFieldValue, isToken, listHasToken, splitList } from "../http/grammar.ts";
import { computeAcceptKey, WEBSOCKET_VERSION } from "./server_handshake.ts";

export { INVALID_RESPONSE };

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
  protocols?: string[];
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
  const protocols = opts.protocols ?? [];
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
  offered: { protocols?: string[]; extensions?: boolean } = {},
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
  if (!(offered.protocols ?? []).includes(protocol)) {
    throw fail(
      `the server chose subprotocol ${protocol}, which we did not offer`,
    );
  }
  return { protocol };
}
