/**
 * Which proxy a URL goes through, from the environment, as curl reads it:
 * pure functions, given a way to read a variable. {@linkcode dial} never
 * reads the environment itself; the client program does, through
 * {@linkcode proxyFromEnv}.
 *
 * | URL      | variables, first set wins                        |
 * | -------- | ------------------------------------------------ |
 * | `wss://` | `https_proxy`, `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY` |
 * | `ws://`  | `http_proxy`, `HTTP_PROXY`, `all_proxy`, `ALL_PROXY` |
 *
 * `no_proxy` (then `NO_PROXY`) lists the hosts that go direct. Like curl,
 * the lower-case name wins over the upper-case one. Unlike curl, `HTTP_PROXY`
 * in upper case is read too (as Go's `http.ProxyFromEnvironment` and
 * Python's urllib do): curl skips it because a CGI program gets it from a
 * request's `Proxy:` header ("httpoxy"), and this client is no CGI program.
 * An empty variable counts as unset.
 *
 * @module
 */

/** Reads one environment variable; undefined when it is not set. */
export type GetEnv = (name: string) => string | undefined;

/** The proxy variables read for a URL of each scheme, in order (curl's order). */
export const PROXY_ENV: Readonly<Record<"ws:" | "wss:", readonly string[]>> = {
  "ws:": ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"],
  "wss:": ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
};

/** The no-proxy variables, in order. */
export const NO_PROXY_ENV: readonly string[] = ["no_proxy", "NO_PROXY"];

/** Every variable {@linkcode proxyFromEnv} may read (what the client's `--allow-env` lists). */
export const ALL_PROXY_ENV: readonly string[] = [
  ...new Set([...PROXY_ENV["wss:"], ...PROXY_ENV["ws:"], ...NO_PROXY_ENV]),
];

/** The first of `names` that is set and not empty, with its value. */
function firstSet(
  names: readonly string[],
  getenv: GetEnv,
): { name: string; value: string } | null {
  for (const name of names) {
    const value = getenv(name)?.trim();
    if (value) return { name, value };
  }
  return null;
}

/**
 * The proxy the environment names for `target` (a `ws:` or `wss:` URL), as
 * the variable's value, or null: none set, or `target`'s host matches
 * `no_proxy`. A value without a scheme is an `http://` proxy, as in curl.
 */
export function proxyFromEnv(
  target: URL,
  getenv: GetEnv,
): { name: string; value: string } | null {
  const names = PROXY_ENV[target.protocol as "ws:" | "wss:"];
  if (!names) return null;
  const found = firstSet(names, getenv);
  if (!found) return null;
  const noProxy = firstSet(NO_PROXY_ENV, getenv);
  const port = target.port ? Number(target.port) : target.protocol === "wss:" ? 443 : 80;
  if (noProxy && noProxyMatches(noProxy.value, target.hostname, port)) return null;
  const value = /^[a-z][a-z0-9+.-]*:\/\//i.test(found.value)
    ? found.value
    : `http://${found.value}`;
  return { name: found.name, value };
}

/**
 * Whether `hostname` (a URL's: IPv6 in brackets or not) and `port` match a
 * `no_proxy` list, curl's rules: entries split on commas (and spaces); `*`
 * alone matches every host; `example.com` and `.example.com` both match
 * example.com and every name under it; an IP address matches itself, an
 * IPv4 `a.b.c.d/n` the addresses in it; `host:port` only that port. Names
 * compare without case and without a trailing dot.
 */
export function noProxyMatches(list: string, hostname: string, port: number): boolean {
  const host = normaliseHost(hostname);
  const entries = list.split(/[\s,]+/).filter((e) => e !== "");
  if (entries.length === 1 && entries[0] === "*") return true;
  return entries.some((entry) => entryMatches(entry, host, port));
}

/** One `no_proxy` entry against a normalised host. */
function entryMatches(entry: string, host: string, port: number): boolean {
  const { name, port: wanted } = splitEntry(entry);
  if (wanted !== null && wanted !== port) return false;
  const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(name);
  if (cidr) return inIpv4Range(host, cidr[1], Number(cidr[2]));
  if (isIpLiteral(name) || isIpLiteral(host)) return sameIp(name, host);
  const pattern = name.replace(/^\.+/, "");
  if (pattern === "") return false;
  return host === pattern || host.endsWith(`.${pattern}`);
}

/** An entry's host (normalised) and port (null when it names none). */
function splitEntry(entry: string): { name: string; port: number | null } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    return { name: normaliseHost(bracketed[1]), port: bracketed[2] ? Number(bracketed[2]) : null };
  }
  const colons = entry.split(":").length - 1;
  const withPort = colons === 1 ? /^(.*):(\d+)$/.exec(entry) : null;
  if (withPort) return { name: normaliseHost(withPort[1]), port: Number(withPort[2]) };
  return { name: normaliseHost(entry), port: null };
}

/** Lower case, no brackets, no trailing dot. */
function normaliseHost(host: string): string {
  return host.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
}

/** Whether `s` is an IPv4 or IPv6 address literal. */
function isIpLiteral(s: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(s) || s.includes(":");
}

/** Whether two address literals are the same address (IPv6 compared in URL-canonical form). */
function sameIp(a: string, b: string): boolean {
  return canonicalIp(a) === canonicalIp(b);
}

/** An address literal in the form `new URL()` gives it; itself if it is not one. */
function canonicalIp(s: string): string {
  try {
    return new URL(`http://${s.includes(":") ? `[${s}]` : s}/`).hostname;
  } catch {
    return s;
  }
}

/** Whether the IPv4 address `host` is in `base/bits`. */
function inIpv4Range(host: string, base: string, bits: number): boolean {
  const a = ipv4Number(host);
  const b = ipv4Number(base);
  if (a === null || b === null || bits > 32) return false;
  if (bits === 0) return true;
  const shift = 32 - bits;
  return (a >>> shift) === (b >>> shift);
}

/** An IPv4 address as a 32-bit number, or null. */
function ipv4Number(s: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}
