/**
 * permessage-deflate (RFC 7692): negotiating it in the opening handshake
 * (§5, §7.1). Compressing and inflating messages (§7.2) is
 * `compression.ts`'s.
 *
 * - Negotiation is pure: parse the offers, choose, build the answer; check
 *   the server's answer on the client side.
 * - A sender that does not keep its context compresses through a zlib
 *   engine shared by the whole process and reset after each message, so
 *   that connection costs no zlib memory at all. A context kept across
 *   messages costs its own engine: about 256 KiB to compress with a 32 KiB
 *   window, about 40 KiB to inflate. {@linkcode PerMessageDeflate.held}
 *   reports it, so a server's memory budget can count it.
 * - Inflation is bounded: it stops as soon as the output passes the
 *   message size limit, so a small "bomb" costs no more than the limit.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7692
 * @module
 */

import { HandshakeError } from "./errors.ts";
import { zlibAvailable } from "./zlib.ts";

/** The extension's name (RFC 7692 §7). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/** zlib refuses an 8-bit window for raw deflate (it uses 9), so a peer asking us for 8 is declined. */
export const MIN_OWN_WINDOW_BITS = 9;

/** What both sides agreed (RFC 7692 §7.1). */
export interface DeflateParams {
  /** The server resets its compression context after each message. */
  serverNoContextTakeover: boolean;
  /** The client resets its compression context after each message. */
  clientNoContextTakeover: boolean;
  /** The server's LZ77 window, 2^bits bytes (8–15). */
  serverMaxWindowBits: number;
  /** The client's LZ77 window, 2^bits bytes (8–15). */
  clientMaxWindowBits: number;
}

/** How permessage-deflate is used when agreed: `serve({ compression: { … } })`, `dial(url, { compression: { … } })`. */
export interface CompressionOptions {
  /** Messages smaller than this many bytes are sent uncompressed (default 256). */
  threshold?: number;
  /** zlib's level, 1 (fastest) to 9 (smallest); default 6 (measured: 1 KiB of JSON, ~25 us at 6, ~9 us at 1). */
  level?: number;
  /** Server: never keep our compression context between messages (no zlib memory per connection). */
  serverNoContextTakeover?: boolean;
  /** Server: ask clients not to keep theirs either. */
  clientNoContextTakeover?: boolean;
}

/** How a server wants to negotiate, within what a client offers. */
export interface DeflatePolicy {
  /** Ask clients not to keep context between messages (saves their memory and ours). */
  clientNoContextTakeover?: boolean;
  /** Do not keep our own context between messages (no zlib memory per connection). */
  serverNoContextTakeover?: boolean;
}

/** One extension of a `Sec-WebSocket-Extensions` header: its name and parameters in order. */
export interface ExtensionOffer {
  /** The extension token, lower-cased. */
  name: string;
  /** Parameters as [name, value] pairs (value null when absent), names lower-cased. */
  params: [string, string | null][];
}

const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1), in one pass,
 * or returns null when it breaks the grammar: a list of `token *(";"
 * token ["=" (token | quoted-string)])`, where a quoted value must be a
 * token once unquoted.
 */
export function parseExtensions(value: string): ExtensionOffer[] | null {
  const out: ExtensionOffer[] = [];
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && value.charCodeAt(i) < 128 && TCHAR[value.charCodeAt(i)] === 1) i++;
    return value.slice(start, i);
  };
  for (;;) {
    skipSpace();
    if (i < n && value[i] === ",") { // empty list elements are allowed (RFC 9110 §5.6.1)
      i++;
      continue;
    }
    if (i >= n) break;
    const name = token();
    if (name === "") return null;
    const offer: ExtensionOffer = { name: name.toLowerCase(), params: [] };
    skipSpace();
    while (i < n && value[i] === ";") {
      i++;
      skipSpace();
      const param = token();
      if (param === "") return null;
      skipSpace();
      let v: string | null = null;
      if (i < n && value[i] === "=") {
        i++;
        skipSpace();
        if (value[i] === '"') {
          i++;
          let s = "";
          while (i < n && value[i] !== '"') {
            if (value[i] === "\\" && i + 1 < n) i++;
            s += value[i++];
          }
          if (i >= n) return null; // unterminated
          i++;
          if (!isToken(s)) return null;
          v = s;
        } else {
          v = token();
          if (v === "") return null;
        }
        skipSpace();
      }
      offer.params.push([param.toLowerCase(), v]);
    }
    out.push(offer);
    skipSpace();
    if (i >= n) break;
    if (value[i] !== ",") return null;
    i++;
  }
  return out;
}

/** A window-bits value, 8–15 as a plain decimal (RFC 7692 §7.1.2), or null. */
function windowBits(v: string | null): number | null {
  if (v === null || !/^[0-9]{1,2}$/.test(v) || v.startsWith("0")) return null;
  const bits = Number(v);
  return bits >= 8 && bits <= 15 ? bits : null;
}

/**
 * Server side (RFC 7692 §5, §7.1): takes the first permessage-deflate
 * offer, in the client's order, that it can accept; an offer with an
 * unknown or repeated parameter, a bad value, or a window we cannot use is
 * declined and the next one tried. Returns the agreed parameters and the
 * response header value, or null when every offer is declined (then the
 * connection goes on uncompressed).
 */
export function negotiateDeflate(
  offers: ExtensionOffer[],
  policy: DeflatePolicy = {},
): { params: DeflateParams; response: string } | null {
  if (!zlibAvailable()) return null;
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const seen = new Set<string>();
    let ok = true;
    let serverNoContext = false;
    let clientNoContext = false;
    let serverBits: number | null = null;
    let clientBits: number | "offered" | null = null;
    for (const [name, value] of offer.params) {
      if (seen.has(name)) {
        ok = false;
        break;
      }
      seen.add(name);
      if (name === "server_no_context_takeover" && value === null) serverNoContext = true;
      else if (name === "client_no_context_takeover" && value === null) clientNoContext = true;
      else if (name === "server_max_window_bits" && windowBits(value) !== null) {
        serverBits = windowBits(value);
      } else if (name === "client_max_window_bits") {
        if (value === null) clientBits = "offered";
        else if (windowBits(value) !== null) clientBits = windowBits(value);
        else ok = false;
      } else ok = false;
      if (!ok) break;
    }
    if (!ok || (serverBits !== null && serverBits < MIN_OWN_WINDOW_BITS)) continue;
    const params: DeflateParams = {
      serverNoContextTakeover: serverNoContext || (policy.serverNoContextTakeover ?? false),
      clientNoContextTakeover: clientNoContext || (policy.clientNoContextTakeover ?? false),
      serverMaxWindowBits: serverBits ?? 15,
      clientMaxWindowBits: typeof clientBits === "number" ? clientBits : 15,
    };
    const parts = [PERMESSAGE_DEFLATE];
    if (params.serverNoContextTakeover) parts.push("server_no_context_takeover");
    if (params.clientNoContextTakeover) parts.push("client_no_context_takeover");
    if (serverBits !== null) parts.push(`server_max_window_bits=${serverBits}`);
    if (typeof clientBits === "number") parts.push(`client_max_window_bits=${clientBits}`);
    return { params, response: parts.join("; ") };
  }
  return null;
}

/** The client's offer: what browsers send (RFC 7692 §7.1.2.2's client_max_window_bits without a value). */
export function deflateOffer(): string {
  return `${PERMESSAGE_DEFLATE}; client_max_window_bits`;
}

/**
 * Client side (RFC 7692 §7.1): checks the server's answer to
 * {@linkcode deflateOffer}. Returns the agreed parameters, null when the
 * server declined (no extension), and throws a HandshakeError (status 0)
 * for an answer that breaks the RFC: another extension, two of them, an
 * unknown or repeated parameter, or a bad value.
 */
export function acceptDeflateResponse(value: string | null): DeflateParams | null {
  if (value === null) return null;
  const fail = (why: string) =>
    new HandshakeError(0, `invalid upgrade response: Sec-WebSocket-Extensions ${why}`);
  const exts = parseExtensions(value);
  if (exts === null) throw fail("is malformed");
  if (exts.length === 0) return null;
  if (exts.length > 1) throw fail("names more than one extension");
  if (exts[0].name !== PERMESSAGE_DEFLATE) {
    throw fail(`names ${exts[0].name}, which we did not offer`);
  }
  const params: DeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  const seen = new Set<string>();
  for (const [name, v] of exts[0].params) {
    if (seen.has(name)) throw fail(`repeats ${name}`);
    seen.add(name);
    if (name === "server_no_context_takeover" && v === null) params.serverNoContextTakeover = true;
    else if (name === "client_no_context_takeover" && v === null) {
      params.clientNoContextTakeover = true;
    } else if (name === "server_max_window_bits" && windowBits(v) !== null) {
      params.serverMaxWindowBits = windowBits(v)!;
    } else if (name === "client_max_window_bits" && windowBits(v) !== null) {
      params.clientMaxWindowBits = windowBits(v)!;
    } else throw fail(`has a bad parameter ${name}${v === null ? "" : `=${v}`}`);
  }
  if (params.clientMaxWindowBits < MIN_OWN_WINDOW_BITS) {
    throw fail("asks for an 8-bit client window, which zlib cannot compress with");
  }
  return params;
}

/** The agreed parameters as an extensions header value (for logs and the open event). */
export function formatDeflateParams(p: DeflateParams): string {
  const parts = [PERMESSAGE_DEFLATE];
  if (p.serverNoContextTakeover) parts.push("server_no_context_takeover");
  if (p.clientNoContextTakeover) parts.push("client_no_context_takeover");
  if (p.serverMaxWindowBits !== 15) parts.push(`server_max_window_bits=${p.serverMaxWindowBits}`);
  if (p.clientMaxWindowBits !== 15) parts.push(`client_max_window_bits=${p.clientMaxWindowBits}`);
  return parts.join("; ");
}
