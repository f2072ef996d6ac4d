/**
 * Applying a {@linkcode KeepAlivePolicy} to real sockets, and reading back
 * what is in force, through libc's `setsockopt`/`getsockopt` (`libc.ts`) on
 * the socket's file descriptor (`fd.ts`). What this module reports is what
 * the kernel says, never what was asked for.
 *
 * Without `--allow-ffi` (or on an unsupported OS) libc is unavailable and
 * {@linkcode applyPolicy} falls back to `setKeepAlive`/`setNoDelay`, saying
 * so (`verified: false`, with the reason).
 *
 * @module
 */

import { connTarget, findFd } from "./fd.ts";
import type { KeepAlivePolicy, KernelKeepAlive } from "./keepalive.ts";
import { denoAddrKey, errno, errnoText, getInt, load, type Native, setInt } from "./libc.ts";

export { closeConn, releaseConn } from "./fd.ts";
export { sockoptUnavailableReason } from "./libc.ts";

/** The options in force on a socket, read back from the kernel. Durations in ms. */
export interface SocketOptions {
  /** SO_KEEPALIVE. */
  keepAlive: boolean;
  /** TCP_KEEPIDLE in ms (null: unknown, only when not verified). */
  idle: number | null;
  /** TCP_KEEPINTVL in ms (null: unknown, only when not verified). */
  interval: number | null;
  /** TCP_KEEPCNT (null: unknown, only when not verified). */
  count: number | null;
  /** TCP_NODELAY. */
  noDelay: boolean;
  /** TCP_USER_TIMEOUT in ms; 0 is the kernel's default behaviour. */
  userTimeout: number;
  /** True when every value above was read back from the socket. */
  verified: boolean;
  /** setsockopt calls that failed, e.g. `TCP_KEEPIDLE=0: Invalid argument (errno 22)`. */
  errors: string[];
  /** Why the values were not verified, when they were not. */
  reason?: string;
}

/** Extra options for {@linkcode applyPolicy} and {@linkcode applyToListener}. */
export interface ApplyOptions {
  /** TCP_USER_TIMEOUT in milliseconds (> 0); unset leaves the kernel's. */
  userTimeout?: number;
}

function readFd(n: Native, fd: number): SocketOptions {
  const { p } = n;
  const errors: string[] = [];
  /** An option's value, or null (and an error noted) when it cannot be read. */
  const read = (name: string, level: number, opt: number | null): number | null => {
    if (opt === null) return 0;
    try {
      return getInt(n, fd, level, opt);
    } catch (err) {
      errors.push(`read ${name}: ${(err as Error).message}`);
      return null;
    }
  };
  const ms = (s: number | null) => s === null ? null : s * 1000;
  const options: SocketOptions = {
    keepAlive: (read("SO_KEEPALIVE", p.SOL_SOCKET, p.SO_KEEPALIVE) ?? 0) > 0,
    idle: ms(read("TCP_KEEPIDLE", p.IPPROTO_TCP, p.TCP_KEEPIDLE)),
    interval: ms(read("TCP_KEEPINTVL", p.IPPROTO_TCP, p.TCP_KEEPINTVL)),
    count: read("TCP_KEEPCNT", p.IPPROTO_TCP, p.TCP_KEEPCNT),
    noDelay: (read("TCP_NODELAY", p.IPPROTO_TCP, p.TCP_NODELAY) ?? 0) > 0,
    userTimeout: read("TCP_USER_TIMEOUT", p.IPPROTO_TCP, p.TCP_USER_TIMEOUT) ?? 0,
    verified: errors.length === 0,
    errors,
  };
  if (!options.verified) options.reason = "some options could not be read back";
  return options;
}

function writeFd(n: Native, fd: number, policy: KeepAlivePolicy, opts: ApplyOptions): string[] {
  const { p } = n;
  const errors: string[] = [];
  const set = (name: string, level: number, opt: number, value: number) => {
    const err = setInt(n, fd, level, opt, value);
    if (err !== null) errors.push(`${name}=${value}: ${err}`);
  };
  set("SO_KEEPALIVE", p.SOL_SOCKET, p.SO_KEEPALIVE, policy.enabled ? 1 : 0);
  if (policy.idle !== null) {
    set("TCP_KEEPIDLE", p.IPPROTO_TCP, p.TCP_KEEPIDLE, Math.ceil(policy.idle / 1000));
  }
  if (policy.interval !== null) {
    set("TCP_KEEPINTVL", p.IPPROTO_TCP, p.TCP_KEEPINTVL, Math.ceil(policy.interval / 1000));
  }
  if (policy.count !== null) {
    set("TCP_KEEPCNT", p.IPPROTO_TCP, p.TCP_KEEPCNT, policy.count);
  }
  set("TCP_NODELAY", p.IPPROTO_TCP, p.TCP_NODELAY, 1); // as Go does
  if (opts.userTimeout !== undefined) {
    if (p.TCP_USER_TIMEOUT === null) {
      errors.push(`TCP_USER_TIMEOUT: not available on ${Deno.build.os}`);
    } else {
      set("TCP_USER_TIMEOUT", p.IPPROTO_TCP, p.TCP_USER_TIMEOUT, Math.ceil(opts.userTimeout));
    }
  }
  return errors;
}

function checkOptions(opts: ApplyOptions): void {
  const ms = opts.userTimeout;
  if (ms !== undefined && !(ms > 0 && ms <= 0x7fffffff)) {
    throw new RangeError(`TCP_USER_TIMEOUT must be a positive number of milliseconds, not ${ms}`);
  }
}

/** Applies a policy to an fd and reads every option back. */
function applyToFd(
  n: Native,
  fd: number,
  policy: KeepAlivePolicy,
  opts: ApplyOptions,
): SocketOptions {
  const errors = writeFd(n, fd, policy, opts);
  const options = readFd(n, fd);
  options.errors.unshift(...errors);
  return options;
}

/** Reads the kernel's keepalive defaults from /proc, or from a fresh socket via FFI. */
export function kernelKeepAliveDefaults(): KernelKeepAlive | null {
  try {
    const read = (name: string) =>
      Number(Deno.readTextFileSync(`/proc/sys/net/ipv4/tcp_keepalive_${name}`).trim());
    const k = { idle: read("time") * 1000, interval: read("intvl") * 1000, count: read("probes") };
    if (Object.values(k).every(Number.isInteger)) return k;
  } catch {
    // /proc needs --allow-all in Deno 2; ask a fresh socket instead.
  }
  const n = load();
  if ("reason" in n) return null;
  const fresh = freshOptions(n);
  return fresh === null
    ? null
    : { idle: fresh.idle!, interval: fresh.interval!, count: fresh.count! };
}

/** What an untouched socket holds: the namespace's sysctl values and the kernel's defaults. */
function freshOptions(n: Native): SocketOptions | null {
  const fd = n.libc.socket(n.p.AF_INET, n.p.SOCK_STREAM, 0);
  if (fd < 0) return null;
  try {
    const fresh = readFd(n, fd);
    return fresh.verified ? fresh : null;
  } finally {
    n.libc.close(fd);
  }
}

/** What Deno's own API can do without FFI: SO_KEEPALIVE and TCP_NODELAY only. */
function fallback(conn: Deno.Conn, policy: KeepAlivePolicy, reason: string): SocketOptions {
  const tcp = conn as Partial<Deno.TcpConn>;
  const canSet = typeof tcp.setKeepAlive === "function" && typeof tcp.setNoDelay === "function";
  if (canSet) {
    tcp.setKeepAlive!(policy.enabled);
    tcp.setNoDelay!(true);
  }
  const kernel = kernelKeepAliveDefaults();
  return {
    keepAlive: canSet ? policy.enabled : false,
    idle: kernel?.idle ?? null,
    interval: kernel?.interval ?? null,
    count: kernel?.count ?? null,
    noDelay: canSet,
    userTimeout: 0,
    verified: false,
    errors: [],
    reason: canSet ? reason : `${reason}; this conn has no setKeepAlive`,
  };
}

/**
 * Applies a policy to a TCP or TLS conn: SO_KEEPALIVE, the non-null keepalive
 * values, TCP_NODELAY=1 (as Go does), TCP_USER_TIMEOUT if asked; then reads
 * all of them back. Failed setsockopt calls are listed in `errors`, not
 * hidden. Without FFI it falls back to `setKeepAlive`/`setNoDelay` and
 * returns `verified: false` with the reason.
 */
export function applyPolicy(
  conn: Deno.Conn,
  policy: KeepAlivePolicy,
  opts: ApplyOptions = {},
): SocketOptions {
  checkOptions(opts);
  const n = load();
  if ("reason" in n) return fallback(conn, policy, n.reason);
  const t = connTarget(conn);
  if (t === null) return fallback(conn, policy, "not a TCP connection");
  const fd = findFd(n, conn, t);
  if (fd === null) return fallback(conn, policy, "the socket's file descriptor was not found");
  return applyToFd(n, fd, policy, opts);
}

/**
 * Applies a policy once to a listening socket; Linux copies these options to
 * every socket it accepts. Returns what was read back, or `verified: false`
 * with a reason when nothing could be set (then apply per conn instead).
 */
export function applyToListener(
  listener: Deno.Listener,
  policy: KeepAlivePolicy,
  opts: ApplyOptions = {},
): SocketOptions {
  checkOptions(opts);
  const unverified = (reason: string): SocketOptions => ({
    keepAlive: false,
    idle: null,
    interval: null,
    count: null,
    noDelay: false,
    userTimeout: 0,
    verified: false,
    errors: [],
    reason,
  });
  const n = load();
  if ("reason" in n) return unverified(n.reason);
  const local = denoAddrKey(listener.addr);
  if (local === null) return unverified("not a TCP listener");
  const fd = findFd(n, listener, { local, peer: null, stream: true });
  if (fd === null) return unverified("the listener's file descriptor was not found");
  return applyToFd(n, fd, policy, opts);
}

/**
 * How to show with one `getsockopt` that an accepted socket holds the
 * options of its listener: the listener's read-back, and one option whose
 * value there differs from a fresh socket's. Linux copies a listener's
 * options into each socket it accepts all together, so finding that one
 * value on an accepted socket shows the copy was made; every option whose
 * listener value is the fresh socket's default has that value either way.
 */
export interface Inheritance {
  /** What the listener's socket holds, read back from it. */
  listener: SocketOptions;
  /** The TCP-level option read on each accepted socket (its number and name)… */
  option: number;
  name: string;
  /** …and the raw value it must have. */
  value: number;
}

/**
 * The options that can tell an inheriting socket from a fresh one, in the
 * order tried: each its {@linkcode SocketOptions} field and the unit that
 * field has over the kernel's raw value. All are TCP-level, so reading one
 * on an fd also shows it is a TCP socket.
 */
const TELLING = [
  ["TCP_KEEPIDLE", "idle", 1000],
  ["TCP_KEEPINTVL", "interval", 1000],
  ["TCP_KEEPCNT", "count", 1],
  ["TCP_USER_TIMEOUT", "userTimeout", 1],
  ["TCP_NODELAY", "noDelay", 1],
] as const;

/**
 * The {@linkcode Inheritance} of a listener whose options were read back
 * (`applyToListener()`), or null when there is no FFI, the read-back is not
 * verified, or no option tells an inheriting socket from a fresh one.
 */
export function inheritance(listener: SocketOptions): Inheritance | null {
  const n = load();
  if ("reason" in n || !listener.verified) return null;
  const fresh = freshOptions(n);
  if (fresh === null) return null;
  for (const [name, field, unit] of TELLING) {
    const option = n.p[name];
    const value = Number(listener[field]) / unit;
    if (option !== null && value !== Number(fresh[field]) / unit) {
      return { listener, option, name, value };
    }
  }
  return null;
}

/**
 * The options in force on an accepted conn, with one `getsockopt` beyond
 * finding its fd: the listener's when the conn holds `inh`'s telling value
 * (so it inherited them all), else null (then read or apply them in full).
 */
export function readInherited(conn: Deno.Conn, inh: Inheritance): SocketOptions | null {
  const n = load();
  const t = connTarget(conn, false); // the TCP-level read below checks the type
  if ("reason" in n || t === null) return null;
  const fd = findFd(n, conn, t);
  if (fd === null) return null;
  try {
    if (getInt(n, fd, n.p.IPPROTO_TCP, inh.option) !== inh.value) return null;
  } catch {
    return null; // not a TCP socket after all
  }
  return { ...inh.listener, verified: true, errors: [] };
}

/** Reads a conn's options without changing them; null when FFI is unavailable or the fd is not found. */
export function readSocketOptions(conn: Deno.Conn): SocketOptions | null {
  const n = load();
  const t = connTarget(conn);
  if ("reason" in n || t === null) return null;
  const fd = findFd(n, conn, t);
  return fd === null ? null : readFd(n, fd);
}

/**
 * Resets `conn`'s TCP connection now (an RST, no FIN), as a crashed host
 * or a middlebox would: for fault injection. Closing a Deno conn always
 * sends a FIN first (it shuts down the write side), so SO_LINGER 0 is not
 * enough; instead the socket is dissolved with `connect(AF_UNSPEC)`, which
 * Linux answers with an RST for an established connection and which leaves
 * the file descriptor to Deno. Returns null, or why it could not be done.
 */
export function resetConn(conn: Deno.Conn): string | null {
  const n = load();
  if ("reason" in n) return n.reason;
  const t = connTarget(conn);
  if (t === null) return "not a TCP connection";
  const fd = findFd(n, conn, t);
  if (fd === null) return "the socket's file descriptor was not found";
  const unspec = new Uint8Array(16); // a sockaddr whose family is AF_UNSPEC (0)
  if (n.libc.connect(fd, unspec, unspec.length) === 0) return null;
  return errnoText(n, errno(n));
}
