/**
 * What a proxy is, from its URL: the schemes, curl's default ports, the
 * credentials (kept apart from what is shown), the tunnel's target, and
 * the error a proxy's refusal becomes. Shared by `proxy.ts` (HTTP CONNECT)
 * and `socks.ts` (SOCKS5).
 *
 * @module
 */

/** The proxy schemes {@linkcode parseProxy} takes. */
export const PROXY_SCHEMES = ["http:", "https:", "socks5:", "socks5h:"] as const;

/** A proxy scheme. */
export type ProxyScheme = typeof PROXY_SCHEMES[number];

/** The port of a proxy URL without one, as curl assumes. */
export const DEFAULT_PROXY_PORT: Readonly<Record<ProxyScheme, number>> = {
  "http:": 1080,
  "https:": 443,
  "socks5:": 1080,
  "socks5h:": 1080,
};

/** A proxy, read from its URL. */
export interface Proxy {
  /** `http:`, `https:`, `socks5:` or `socks5h:`. */
  scheme: ProxyScheme;
  /** The host name or IP address, without brackets. */
  hostname: string;
  /** The port. */
  port: number;
  /** The user name (URL-decoded), or null. */
  username: string | null;
  /** The password (URL-decoded), or null. */
  password: string | null;
  /** The URL without credentials, as errors and logs show it. */
  shown: string;
}

/** Where the tunnel goes: the WebSocket server. */
export interface TunnelTarget {
  /** The host name or IP address, without brackets. */
  hostname: string;
  /** The port. */
  port: number;
}

/**
 * A proxy that refused the tunnel, or answered against its protocol:
 * `status` is the HTTP status (407, 403, 502…), the SOCKS reply code
 * (RFC 1928 §6; RFC 1929's failure as 1 with `socks: "auth"`), or 0 for an
 * answer that breaks the protocol. The message names the proxy without its
 * credentials. `name` is `"ProxyError"`.
 */
export class ProxyError extends Error {
  /** The proxy's status, or 0. */
  readonly status: number;
  /** The proxy, without credentials. */
  readonly proxy: string;

  /**
   * @param proxy the proxy as shown ({@linkcode redactProxy})
   * @param status the proxy's status, or 0
   * @param message one sentence saying what went wrong
   */
  constructor(proxy: string, status: number, message: string) {
    super(message);
    this.name = "ProxyError";
    this.proxy = proxy;
    this.status = status;
  }
}

/**
 * Reads a proxy URL. A TypeError for one that cannot work: not a URL, a
 * scheme other than `http`, `https`, `socks5`, `socks5h`, or no host. The
 * error never repeats the URL's credentials.
 */
export function parseProxy(url: string | URL): Proxy {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not repeated: it may hold a password.
    throw new TypeError("the proxy is not a URL (SCHEME://[USER:PASS@]HOST[:PORT])");
  }
  const scheme = u.protocol as ProxyScheme;
  if (!PROXY_SCHEMES.includes(scheme)) {
    throw new TypeError(
      `the proxy URL's scheme ${u.protocol}// is not one of http://, https://, socks5://, socks5h://`,
    );
  }
  const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
  if (hostname === "") throw new TypeError(`the proxy URL ${scheme}// names no host`);
  const port = u.port ? Number(u.port) : DEFAULT_PROXY_PORT[scheme];
  const username = u.username ? decodeURIComponent(u.username) : null;
  const password = u.password ? decodeURIComponent(u.password) : null;
  return {
    scheme,
    hostname,
    port,
    username,
    password,
    shown: shownProxy(scheme, u.hostname, port),
  };
}

/** `scheme://host:port`, the host as the URL writes it (IPv6 in brackets). */
function shownProxy(scheme: string, host: string, port: number): string {
  return `${scheme}//${host}:${port}`;
}

/** A proxy URL without its credentials (`http://127.0.0.1:8888`), for logs; `"(invalid)"` when it is not one. */
export function redactProxy(url: string | URL): string {
  try {
    return parseProxy(url).shown;
  } catch {
    return "(invalid)";
  }
}
