/**
 * Plain HTTP/1.1 responses (RFC 9112 §4, §6.3): what a server sends when it
 * does not upgrade, from a refused handshake to a health check's 200.
 *
 * @module
 */

import type { HandshakeError } from "./errors.ts";
import { isFieldValue, isToken } from "./grammar.ts";

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
