/**
 * The client's way through a proxy: read a proxy URL, open TCP (or TLS) to
 * the proxy, and ask it for a tunnel to the target, by HTTP CONNECT (RFC
 * 9110 §9.3.6) here or by SOCKS5 (`socks.ts`).
 *
 * ```
 *   client ──TCP (keepalive here: it crosses the NAT)──▶ proxy ──TCP──▶ server
 *     http://   CONNECT host:port  →  2xx, then the tunnel carries the bytes
 *     https://  TLS to the proxy, then CONNECT inside it
 *     socks5:// RFC 1928 (+ RFC 1929 user/password); the name resolved here
 *     socks5h://                                       the name sent as is
 * ```
 *
 * Credentials come from the URL's userinfo and go only to the proxy
 * (`Proxy-Authorization: Basic`, or the SOCKS sub-negotiation); no error
 * message or log names them: {@linkcode redactProxy} is what is shown.
 *
 * @module
 */

import { DEFAULT_MAX_HEAD_SIZE, parseResponseHead } from "../http/head.ts";
import { readHead, writeAll } from "../http/io.ts";
import { abortable } from "../async.ts";
import { errorText } from "../errors.ts";
import { closeConn } from "../tcp/sockopt.ts";
import { socks5Connect } from "./socks.ts";
import { authority } from "../http/grammar.ts";
import { type Proxy, ProxyError, type TunnelTarget } from "./proxy_url.ts";

export {
  DEFAULT_PROXY_PORT,
  parseProxy,
  type Proxy,
  PROXY_SCHEMES,
  ProxyError,
  type ProxyScheme,
  redactProxy,
  type TunnelTarget,
} from "./proxy_url.ts";

/** The most of a CONNECT answer's head that is read (bytes, the empty line included). */
export const MAX_CONNECT_HEAD = DEFAULT_MAX_HEAD_SIZE;

/**
 * Opens the connection to `proxy` and a tunnel through it to `target`:
 * the result carries the target's bytes, and is the TCP connection to the
 * proxy (a `Deno.TcpConn`; a `Deno.TlsConn` for an `https://` proxy). Fails
 * with a {@linkcode ProxyError} when the proxy cannot be reached (its TLS
 * included), refuses, or breaks its protocol; with `Deno.errors.NotFound`
 * when `socks5://` cannot resolve the target's name; with the signal's
 * reason when it aborts. Closes what it opened on failure.
 */
export async function openTunnel(
  proxy: Proxy,
  target: TunnelTarget,
  options: { caCerts?: string[]; signal: AbortSignal },
): Promise<Deno.TcpConn | Deno.TlsConn> {
  const { signal } = options;
  const conn = await reach(proxy, options.caCerts, signal);
  try {
    if (proxy.scheme === "socks5:" || proxy.scheme === "socks5h:") {
      await socks5Connect(conn, proxy, target, signal);
    } else {
      await httpConnect(conn, proxy, target, signal);
    }
    return conn;
  } catch (err) {
    closeConn(conn);
    throw err;
  }
}

/** TCP (or TLS, its handshake done) to the proxy; a failure is a {@linkcode ProxyError} (status 0) saying the proxy could not be reached. */
async function reach(
  proxy: Proxy,
  caCerts: string[] | undefined,
  signal: AbortSignal,
): Promise<Deno.TcpConn | Deno.TlsConn> {
  const { hostname, port } = proxy;
  let tls: Deno.TlsConn | null = null;
  try {
    if (proxy.scheme !== "https:") return await abortable(Deno.connect({ hostname, port }), signal);
    tls = await abortable(Deno.connectTls({ hostname, port, caCerts }), signal);
    await abortable(tls.handshake(), signal);
    return tls;
  } catch (err) {
    if (tls) closeConn(tls);
    if (signal.aborted) throw err;
    const why = err instanceof Deno.errors.ConnectionRefused
      ? "connection refused"
      : err instanceof Deno.errors.NotFound
      ? "host not found"
      : errorText(err);
    throw new ProxyError(proxy.shown, 0, `cannot reach the proxy ${proxy.shown}: ${why}`);
  }
}

/** The CONNECT request for `target`, with `Proxy-Authorization: Basic` when the proxy has a user. */
export function connectRequest(proxy: Proxy, target: TunnelTarget): string {
  const where = authority(target);
  const lines = [`CONNECT ${where} HTTP/1.1`, `Host: ${where}`];
  if (proxy.username !== null || proxy.password !== null) {
    const basic = btoa(
      String.fromCharCode(
        ...new TextEncoder().encode(`${proxy.username ?? ""}:${proxy.password ?? ""}`),
      ),
    );
    lines.push(`Proxy-Authorization: Basic ${basic}`);
  }
  return lines.join("\r\n") + "\r\n\r\n";
}

/**
 * Asks an HTTP proxy for a tunnel (RFC 9110 §9.3.6) and reads its answer:
 * a 2xx opens it; anything else is a {@linkcode ProxyError} with the status
 * and reason. A head longer than {@linkcode MAX_CONNECT_HEAD}, one that is
 * not HTTP, or bytes after a 2xx head before the client spoke, fail with
 * status 0; a proxy that never ends its head is cut by `signal`.
 */
export async function httpConnect(
  conn: Deno.Conn,
  proxy: Proxy,
  target: TunnelTarget,
  signal: AbortSignal,
): Promise<void> {
  await abortable(writeAll(conn, new TextEncoder().encode(connectRequest(proxy, target))), signal);
  const where = `proxy ${proxy.shown}`;
  let head;
  let got;
  try {
    got = await readHead(conn, { maxHeadSize: MAX_CONNECT_HEAD, signal, kind: "response" });
    if (got) head = parseResponseHead(got.head);
  } catch (err) {
    if (signal.aborted) throw err;
    throw new ProxyError(
      proxy.shown,
      0,
      `${where} gave no valid answer to CONNECT: ${errorText(err)}`,
    );
  }
  if (!got || !head) {
    throw new ProxyError(
      proxy.shown,
      0,
      `${where} closed the connection without answering CONNECT`,
    );
  }
  if (head.status < 200 || head.status > 299) {
    const reason = printable(head.reason);
    throw new ProxyError(
      proxy.shown,
      head.status,
      `${where} refused the tunnel to ${authority(target)}: ${head.status}${
        reason ? ` ${reason}` : ""
      }`,
    );
  }
  if (got.rest.length > 0) {
    throw new ProxyError(proxy.shown, 0, `${where} sent bytes after its ${head.status} to CONNECT`);
  }
}

/** At most 100 characters of `text`, control characters dropped. */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f-\x9f]+/g, " ").trim();
  return clean.length > 100 ? clean.slice(0, 99) + "…" : clean;
}
