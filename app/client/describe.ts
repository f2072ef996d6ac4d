/**
 * The client's sentences for how a connection failed or ended: one line
 * each, with the server's words (a refusal's body, a close reason) made
 * safe for a terminal.
 *
 * @module
 */

import { type CloseInfo, HandshakeError } from "../../mod.ts";
import { GoingAway, NormalClosure, NoStatusReceived } from "../../lib/ws/mod.ts";
import { errorText } from "../../lib/errors.ts";
import { UNSAFE_CHARS } from "../common/log.ts";
import { describeTlsError } from "./tls.ts";
import { ProxyError } from "../../lib/client/proxy.ts";

/**
 * Whether a close ends the program successfully: a close handshake with
 * 1000, 1001, or no status code at all (1005: an empty close frame, which
 * npm ws's `ws.close()` sends).
 */
export function isNormalClose(info: CloseInfo): boolean {
  return info.clean &&
    (info.code === NormalClosure || info.code === GoingAway || info.code === NoStatusReceived);
}

const UNSAFE_RUNS = new RegExp(UNSAFE_CHARS.source + "+", "g");

/** The most of a refusal's body that an error line shows (characters). */
export const MAX_BODY_SHOWN = 200;

/**
 * A refused upgrade's body as part of one line: tags of an HTML page and
 * runs of white space dropped, control characters escaped, at most
 * {@linkcode MAX_BODY_SHOWN} characters; "" when nothing is left.
 */
export function bodyLine(body: string): string {
  const text = body.replace(/<(script|style)\b[^]*?<\/\1>/gi, " ").replace(/<[^>]*>/g, " ")
    .replace(UNSAFE_RUNS, " ").replace(/\s+/g, " ").trim();
  return text.length > MAX_BODY_SHOWN ? text.slice(0, MAX_BODY_SHOWN - 1) + "…" : text;
}

/** One sentence saying why a connection attempt failed. */
export function describeDialError(
  url: URL,
  err: unknown,
  hints: { caFile: string | null; dial?: { cert?: string } } = { caFile: null },
): string {
  const where = url.host;
  if (err instanceof HandshakeError) {
    const body = bodyLine(err.body);
    // Our server's word for a TLS client without a certificate (--tls-client-ca).
    const certHint = err.status === 403 && body === "no client certificate" &&
        hints.dial?.cert === undefined
      ? "; the server asks for a client certificate: pass one with --cert FILE --key FILE"
      : "";
    return `handshake with ${where} failed: ${err.message}${body ? `: ${body}` : ""}${certHint}`;
  }
  if (err instanceof TypeError) return err.message;
  if (err instanceof ProxyError) return `cannot connect to ${where}: ${err.message}`;
  if (err instanceof Deno.errors.ConnectionRefused) {
    return `cannot connect to ${where}: connection refused`;
  }
  if (err instanceof Deno.errors.TimedOut) {
    return `cannot connect to ${where}: ${err.message}`;
  }
  if (err instanceof Deno.errors.NotFound) {
    return `cannot connect to ${where}: host not found`;
  }
  const text = errorText(err);
  const tls = url.protocol === "wss:" ? describeTlsError(text, hints) : null;
  if (tls) return `cannot connect to ${where}: ${tls}`;
  return `cannot connect to ${where}: ${text}`;
}

/** One sentence saying how a connection ended. */
export function describeClose(info: CloseInfo): string {
  const why = info.error ? `: ${info.error}` : info.reason ? `: ${info.reason}` : "";
  return `connection closed: ${info.cause} (code ${info.code}${why})`;
}

/** One sentence for a --count that was not reached in time. */
export function describeCountTimeout(received: number, count: number, wait: number): string {
  return `timed out: received ${received} of ${count} messages within ${wait}ms of the last send`;
}
