/**
 * Applying a {@linkcode KeepAlivePolicy} to real sockets, and reading back
 * what is in force, through libc's `setsockopt`/`getsockopt` via `Deno.dlopen`.
 *
 * Deno 2 exposes no file descriptor for a connection, so this module finds it:
 * Linux hands out the lowest free fd, so a new connection's fd is almost
 * always one this module saw freed, or just above the highest one it has
 * matched. Each candidate is verified with `getsockname` and `getpeername`
 * against the connection's own addresses before any option is touched; only
 * after a bounded number of misses does it scan every fd.
 *
 * Without `--allow-ffi` (or on an unsupported OS) the module is unavailable and
 * {@linkcode applyToConn} falls back to `setKeepAlive`/`setNoDelay`.
 *
 * @module
 */

import { UsageError } from "../ws/errors.ts";
import type { KeepAlivePolicy, KernelKeepAlive } from "./keepalive.ts";

// ---------------------------------------------------------------------------
// Option numbers, per platform
// ---------------------------------------------------------------------------

/** Socket option numbers and ABI details for one OS. */
export interface SockoptPlatform {
  /** `SOL_SOCKET` level. */
  SOL_SOCKET: number;
  /** `SO_KEEPALIVE` (level SOL_SOCKET). */
  SO_KEEPALIVE: number;
  /** `SO_TYPE` (level SOL_SOCKET), to check for a stream socket. */
  SO_TYPE: number;
  /** `SO_ACCEPTCONN` (level SOL_SOCKET), to check for a listening socket. */
  SO_ACCEPTCONN: number;
  /** `IPPROTO_TCP` level. */
  IPPROTO_TCP: number;
  /** `TCP_NODELAY`. */
  TCP_NODELAY: number;
  /** `TCP_KEEPIDLE` (on macOS, `TCP_KEEPALIVE`). */
  TCP_KEEPIDLE: number;
  /** `TCP_KEEPINTVL`. */
  TCP_KEEPINTVL: number;
  /** `TCP_KEEPCNT`. */
  TCP_KEEPCNT: number;
  /** `TCP_USER_TIMEOUT`, or null where the OS has none. */
  TCP_USER_TIMEOUT: number | null;
  /** `AF_INET`. */
  AF_INET: number;
  /** `AF_INET6`. */
  AF_INET6: number;
  /** `SOCK_STREAM`. */
  SOCK_STREAM: number;
  /** `RLIMIT_NOFILE`. */
  RLIMIT_NOFILE: number;
  /** Whether `struct sockaddr` starts with a length byte (BSD). */
  SOCKADDR_HAS_LEN: boolean;
  /** The libc function returning `&errno`. */
  ERRNO_SYMBOL: string;
  /** The library to open when FFI is allowed everywhere. */
  LIBC: string;
  /** Absolute paths tried when `--allow-ffi` is narrowed to a path. */
  LIBC_PATHS: readonly string[];
  /** Where the process's open fds are listed. */
  FD_DIR: string;
}

/** Linux (glibc): include/uapi/asm-generic/socket.h, include/uapi/linux/tcp.h. */
export const LINUX: SockoptPlatform = {
  SOL_SOCKET: 1,
  SO_KEEPALIVE: 9,
  SO_TYPE: 3,
  SO_ACCEPTCONN: 30,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  TCP_KEEPIDLE: 4,
  TCP_KEEPINTVL: 5,
  TCP_KEEPCNT: 6,
  TCP_USER_TIMEOUT: 18,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  RLIMIT_NOFILE: 7,
  SOCKADDR_HAS_LEN: false,
  ERRNO_SYMBOL: "__errno_location",
  LIBC: "libc.so.6",
  LIBC_PATHS: [
    `/lib/${Deno.build.arch}-linux-gnu/libc.so.6`,
    `/usr/lib/${Deno.build.arch}-linux-gnu/libc.so.6`,
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
    "/usr/lib/libc.so.6",
    "/lib/libc.so.6",
  ],
  FD_DIR: "/proc/self/fd",
};

/** macOS: sys/socket.h, netinet/tcp.h (idle is `TCP_KEEPALIVE`, 0x10). */
export const DARWIN: SockoptPlatform = {
  SOL_SOCKET: 0xffff,
  SO_KEEPALIVE: 0x8,
  SO_TYPE: 0x1008,
  SO_ACCEPTCONN: 0x2,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 0x1,
  TCP_KEEPIDLE: 0x10,
  TCP_KEEPINTVL: 0x101,
  TCP_KEEPCNT: 0x102,
  TCP_USER_TIMEOUT: null,
  AF_INET: 2,
  AF_INET6: 30,
  SOCK_STREAM: 1,
  RLIMIT_NOFILE: 8,
  SOCKADDR_HAS_LEN: true,
  ERRNO_SYMBOL: "__error",
  LIBC: "/usr/lib/libSystem.B.dylib",
  LIBC_PATHS: ["/usr/lib/libSystem.B.dylib"],
  FD_DIR: "/dev/fd",
};

/** This OS's option numbers, or null where sockets cannot be tuned (e.g. Windows). */
export const PLATFORM: SockoptPlatform | null = Deno.build.os === "linux"
  ? LINUX
  : Deno.build.os === "darwin"
  ? DARWIN
  : null;

// ---------------------------------------------------------------------------
// Loading libc
// ---------------------------------------------------------------------------

const SYMBOLS = {
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  strlen: { parameters: ["pointer"], result: "usize" },
  // Reads memory without Deno.UnsafePointerView, which needs unrestricted FFI.
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
} as const;

function dlopenLibc(path: string, p: SockoptPlatform) {
  return Deno.dlopen(
    path,
    {
      ...SYMBOLS,
      errno: { name: p.ERRNO_SYMBOL, parameters: [], result: "pointer" },
    } as const,
  );
}

type Libc = ReturnType<typeof dlopenLibc>["symbols"];

interface Native {
  libc: Libc;
  p: SockoptPlatform;
  /** `&errno` of this thread, fetched once. */
  errnoPtr: Deno.PointerValue;
}

/** `F_GETFD`, the same on Linux and macOS: fails only for a closed fd. */
const F_GETFD = 1;

let loaded: Native | { reason: string } | undefined;

/** Opens libc once, if this OS is supported and FFI is granted for it. */
function load(): Native | { reason: string } {
  if (loaded) return loaded;
  loaded = open();
  return loaded;
}

function open(): Native | { reason: string } {
  const p = PLATFORM;
  if (p === null) {
    return { reason: `socket options are not supported on ${Deno.build.os}` };
  }
  const granted = (path?: string) =>
    Deno.permissions.querySync(path ? { name: "ffi", path } : { name: "ffi" })
      .state === "granted";
  // A bare "libc.so.6" works only with unrestricted FFI: with
  // --allow-ffi=<path> Deno resolves the name against the cwd.
  const paths = granted() ? [p.LIBC] : p.LIBC_PATHS.filter((x) => granted(x));
  if (paths.length === 0) return { reason: "--allow-ffi not granted" };
  let lastError = "";
  for (const path of paths) {
    try {
      const libc = dlopenLibc(path, p).symbols;
      return { libc, p, errnoPtr: libc.errno() };
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
  }
  return { reason: `libc could not be loaded (${lastError})` };
}

/** Null when libc is loaded; otherwise one phrase saying why options cannot be set. */
export function sockoptUnavailableReason(): string | null {
  const n = load();
  return "reason" in n ? n.reason : null;
}

// ---------------------------------------------------------------------------
// Small libc wrappers
// ---------------------------------------------------------------------------

const intBuf = new Int32Array(1);
const lenBuf = new Uint32Array(1);
const addrBuf = new Uint8Array(128); // sizeof(struct sockaddr_storage)

function bytes(a: Int32Array | Uint32Array | BigUint64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

const errnoBuf = new Int32Array(1);

/** The calling thread's errno; read right after the failed call. */
function errno(n: Native): number {
  if (n.errnoPtr === null) return 0;
  n.libc.memcpy(bytes(errnoBuf), n.errnoPtr, 4n);
  return errnoBuf[0];
}

function errnoText(n: Native, code: number): string {
  const ptr = n.libc.strerror(code);
  const len = ptr === null ? 0 : Number(n.libc.strlen(ptr));
  if (ptr === null || len === 0 || len > 1024) return `errno ${code}`;
  const text = new Uint8Array(len);
  n.libc.memcpy(text, ptr, BigInt(len));
  return `${new TextDecoder().decode(text)} (errno ${code})`;
}

/** getsockopt for an int option; returns the value or throws with errno's text. */
function getInt(n: Native, fd: number, level: number, opt: number): number {
  lenBuf[0] = 4;
  if (n.libc.getsockopt(fd, level, opt, bytes(intBuf), bytes(lenBuf)) !== 0) {
    throw new Error(errnoText(n, errno(n)));
  }
  return intBuf[0];
}

/** setsockopt for an int option; returns null or errno's text. */
function setInt(
  n: Native,
  fd: number,
  level: number,
  opt: number,
  value: number,
): string | null {
  intBuf[0] = value;
  if (n.libc.setsockopt(fd, level, opt, bytes(intBuf), 4) === 0) return null;
  return errnoText(n, errno(n));
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

interface IpPort {
  family: 4 | 6;
  ip: Uint8Array;
  port: number;
}

/** Parses an IPv4 or IPv6 literal (as Deno prints it) into bytes. */
function ipBytes(text: string): { family: 4 | 6; ip: Uint8Array } | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const ip = new Uint8Array(v4.slice(1).map(Number));
    return ip.every((b, i) => b === Number(v4[i + 1])) ? { family: 4, ip } : null;
  }
  const host = text.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!host.includes(":")) return null;
  const groups: number[] = [];
  const halves = host.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const tail = ipBytes(piece);
        if (tail === null || tail.family !== 4) return null;
        out.push(
          (tail.ip[0] << 8) | tail.ip[1],
          (tail.ip[2] << 8) | tail.ip[3],
        );
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  groups.push(...head, ...new Array(halves.length === 2 ? missing : 0).fill(0));
  groups.push(...tail);
  const ip = new Uint8Array(16);
  groups.forEach((g, i) => {
    ip[2 * i] = g >> 8;
    ip[2 * i + 1] = g & 0xff;
  });
  return { family: 6, ip };
}

/** A Deno TCP address as bytes, or null for anything that is not TCP over IP. */
function fromDenoAddr(addr: Deno.Addr): IpPort | null {
  if (addr.transport !== "tcp") return null;
  const parsed = ipBytes(addr.hostname);
  return parsed ? { ...parsed, port: addr.port } : null;
}

/** Reads a `sockaddr_in`/`sockaddr_in6` from {@linkcode addrBuf}. */
function readSockaddr(p: SockoptPlatform): IpPort | null {
  const view = new DataView(addrBuf.buffer);
  // Linux: u16 family in host order (little-endian on every supported CPU);
  // BSD: u8 length, then u8 family.
  const family = p.SOCKADDR_HAS_LEN ? addrBuf[1] : view.getUint16(0, true);
  const port = view.getUint16(2, false);
  if (family === p.AF_INET) {
    return { family: 4, ip: addrBuf.slice(4, 8), port };
  }
  if (family === p.AF_INET6) {
    return { family: 6, ip: addrBuf.slice(8, 24), port };
  }
  return null;
}

function sameAddr(a: IpPort | null, b: IpPort): boolean {
  return a !== null && a.family === b.family && a.port === b.port &&
    a.ip.length === b.ip.length && a.ip.every((x, i) => x === b.ip[i]);
}

// ---------------------------------------------------------------------------
// Finding a socket's fd
// ---------------------------------------------------------------------------

/** What a socket must look like: its local address, and its peer (null = listening). */
interface Target {
  local: IpPort;
  peer: IpPort | null;
}

type ProbeResult = "match" | "free" | "other";

const counters = { probes: 0, fullScans: 0 };

/** The fd finder's counters: getsockname probes made, and full fd scans. */
export function fdFinderStats(): { probes: number; fullScans: number } {
  return { ...counters };
}

/** Checks whether `fd` is the socket described by `t`, verifying both ends. */
function probe(n: Native, fd: number, t: Target): ProbeResult {
  const { libc, p } = n;
  counters.probes++;
  lenBuf[0] = addrBuf.length;
  if (libc.getsockname(fd, addrBuf, bytes(lenBuf)) !== 0) {
    return libc.fcntl(fd, F_GETFD, 0) < 0 ? "free" : "other";
  }
  if (!sameAddr(readSockaddr(p), t.local)) return "other";
  lenBuf[0] = addrBuf.length;
  const hasPeer = libc.getpeername(fd, addrBuf, bytes(lenBuf)) === 0;
  try {
    if (t.peer === null) {
      if (hasPeer) return "other";
      return getInt(n, fd, p.SOL_SOCKET, p.SO_ACCEPTCONN) !== 0 ? "match" : "other";
    }
    if (!hasPeer || !sameAddr(readSockaddr(p), t.peer)) return "other";
    return getInt(n, fd, p.SOL_SOCKET, p.SO_TYPE) === p.SOCK_STREAM ? "match" : "other";
  } catch {
    return "other";
  }
}

/** A binary min-heap of fds. */
class MinHeap {
  #a: number[] = [];
  get size(): number {
    return this.#a.length;
  }
  push(x: number): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }
  pop(): number | undefined {
    const a = this.#a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** Process-wide record of which fd belongs to which conn or listener. */
const owners = new Map<number, WeakRef<object>>();
const fdOf = new WeakMap<object, number>();
/** fds given back by {@linkcode releaseConn}: Linux will hand the lowest out next. */
const freed = new MinHeap();
const freedSet = new Set<number>();
/** Probed fds that were in use by something else (e.g. a conn not yet applied), newest last. */
const skipped = new Set<number>();
const SKIPPED_MAX = 256;
/** The highest fd matched so far; new fds appear above it. */
let highWater = 2;

/** Candidates tried before falling back to a full scan. */
export const MAX_CANDIDATES = 64;
const FROM_FREED = 16;
const ABOVE_FIRST = 8;
const FROM_SKIPPED = 16;
const FULL_SCAN_CAP = 1 << 20;

function isClaimed(fd: number, self: object): boolean {
  const owner = owners.get(fd)?.deref();
  return owner !== undefined && owner !== self;
}

function addFreed(fd: number): void {
  if (!freedSet.has(fd)) {
    freedSet.add(fd);
    freed.push(fd);
  }
}

function noteSkipped(fd: number): void {
  skipped.delete(fd);
  skipped.add(fd);
  if (skipped.size > SKIPPED_MAX) {
    skipped.delete(skipped.values().next().value!);
  }
}

function claim(fd: number, self: object): number {
  const previous = owners.get(fd)?.deref();
  if (previous !== undefined && previous !== self) fdOf.delete(previous);
  owners.set(fd, new WeakRef(self));
  fdOf.set(self, fd);
  skipped.delete(fd);
  freedSet.delete(fd); // its stale heap entry is dropped when popped
  if (fd > highWater) highWater = fd;
  return fd;
}

/** Tries the likely fds (freed ones, then above the high-water mark, then skipped ones). */
function findAmongCandidates(
  n: Native,
  t: Target,
  self: object,
): number | null {
  let budget = MAX_CANDIDATES;
  const tried = new Set<number>();
  const attempt = (fd: number): ProbeResult | null => {
    if (budget <= 0 || tried.has(fd) || isClaimed(fd, self)) return null;
    tried.add(fd);
    budget--;
    return probe(n, fd, t);
  };

  // 1. The lowest fds given back: Linux reuses the lowest free fd first.
  const keep: number[] = [];
  let found: number | null = null;
  for (let i = 0; i < FROM_FREED && found === null; i++) {
    const fd = freed.pop();
    if (fd === undefined) break;
    if (!freedSet.has(fd)) continue; // stale entry: claimed since
    const r = attempt(fd);
    if (r === "match") found = fd;
    else if (r === "free" || r === null) keep.push(fd);
    else {
      freedSet.delete(fd); // someone else has it now
      noteSkipped(fd);
    }
  }
  for (const fd of keep) freed.push(fd);
  if (found !== null) return found;

  // 2. Just above the highest fd matched so far.
  const above = (count: number): number | null => {
    for (let fd = highWater + 1; fd <= highWater + count && budget > 0; fd++) {
      const r = attempt(fd);
      if (r === "match") return fd;
      if (r === "other") noteSkipped(fd);
    }
    return null;
  };
  found = above(ABOVE_FIRST);
  if (found !== null) return found;

  // 3. fds seen busy earlier: often conns accepted before this one but not yet applied.
  const recent = [...skipped].reverse().slice(0, FROM_SKIPPED);
  for (const fd of recent) {
    const r = attempt(fd);
    if (r === "match") return fd;
    if (r === "free") skipped.delete(fd);
  }

  // 4. Further above the high-water mark, until the budget is spent.
  return above(MAX_CANDIDATES);
}

/** Lists open fds, or null when the fd directory cannot be read. */
function listFds(p: SockoptPlatform): number[] | null {
  try {
    return [...Deno.readDirSync(p.FD_DIR)]
      .map((e) => Number(e.name))
      .filter((x) => Number.isInteger(x))
      .sort((a, b) => a - b);
  } catch {
    return null;
  }
}

/** The soft limit on open fds, capped so a scan stays finite. */
function fdLimit(n: Native): number {
  const lim = new BigUint64Array(2);
  if (n.libc.getrlimit(n.p.RLIMIT_NOFILE, bytes(lim)) !== 0) return 1024;
  return Number(
    lim[0] < BigInt(FULL_SCAN_CAP) ? lim[0] : BigInt(FULL_SCAN_CAP),
  );
}

/**
 * Scans every fd. Also records the lowest free fds it passes, so the next
 * lookups find their fd among the candidates again.
 */
function fullScan(n: Native, t: Target): number | null {
  counters.fullScans++;
  const listed = listFds(n.p);
  const fds = listed ?? Array.from({ length: fdLimit(n) }, (_, i) => i);
  const open = listed ? new Set(listed) : null;
  let gaps = 0;
  const noteFree = (fd: number) => {
    if (gaps < MAX_CANDIDATES && !owners.has(fd)) {
      addFreed(fd);
      gaps++;
    }
  };
  let prev = -1;
  for (const fd of fds) {
    if (open) { // fds missing from the listing are free
      for (let g = prev + 1; g < fd; g++) if (!open.has(g)) noteFree(g);
      prev = fd;
    }
    if (fd < 3) continue;
    const r = probe(n, fd, t);
    if (r === "match") return fd;
    if (r === "free") noteFree(fd);
  }
  return null;
}

/** Finds and verifies the fd of a conn or listener, or returns null. */
function findFd(n: Native, self: object, t: Target): number | null {
  const cached = fdOf.get(self);
  if (cached !== undefined) {
    if (probe(n, cached, t) === "match") return cached;
    fdOf.delete(self);
    if (owners.get(cached)?.deref() === self) owners.delete(cached);
  }
  const fd = findAmongCandidates(n, t, self) ?? fullScan(n, t);
  return fd === null ? null : claim(fd, self);
}

function connTarget(conn: Deno.Conn): Target | null {
  const local = fromDenoAddr(conn.localAddr);
  const peer = fromDenoAddr(conn.remoteAddr);
  return local && peer ? { local, peer } : null;
}

/**
 * The verified fd of a TCP or TLS conn, or null when it cannot be found or
 * FFI is unavailable. Tries at most {@linkcode MAX_CANDIDATES} likely fds
 * before scanning them all.
 */
export function findConnFd(conn: Deno.Conn): number | null {
  const n = load();
  const t = connTarget(conn);
  return "reason" in n || t === null ? null : findFd(n, conn, t);
}

/** Forgets a conn's (or listener's) fd so it can be matched again; safe to call twice. */
export function releaseConn(conn: Deno.Conn | Deno.Listener): void {
  const fd = fdOf.get(conn);
  if (fd === undefined) return;
  fdOf.delete(conn);
  if (owners.get(fd)?.deref() === conn) {
    owners.delete(fd);
    addFreed(fd);
  }
}

// ---------------------------------------------------------------------------
// Applying and reading options
// ---------------------------------------------------------------------------

/** The `keepalive` and `user_timeout_ms` fields of an `open` log event. */
export function keepAliveLogFields(k: EffectiveKeepAlive): Record<string, unknown> {
  return {
    keepalive: {
      enabled: k.enabled,
      idle_s: k.idle_s,
      interval_s: k.interval_s,
      count: k.count,
      verified: k.verified,
    },
    user_timeout_ms: k.user_timeout_ms,
  };
}

/** The options in force on a socket. */
export interface EffectiveKeepAlive {
  /** SO_KEEPALIVE. */
  enabled: boolean;
  /** TCP_KEEPIDLE seconds (null: unknown, only when not verified). */
  idle_s: number | null;
  /** TCP_KEEPINTVL seconds (null: unknown, only when not verified). */
  interval_s: number | null;
  /** TCP_KEEPCNT (null: unknown, only when not verified). */
  count: number | null;
  /** TCP_NODELAY. */
  nodelay: boolean;
  /** TCP_USER_TIMEOUT in ms; 0 is the kernel's default behaviour. */
  user_timeout_ms: number;
  /** True when every value above was read back from the socket. */
  verified: boolean;
  /** setsockopt calls that failed, e.g. `TCP_KEEPIDLE=0: Invalid argument (errno 22)`. */
  errors: string[];
  /** Why the values were not verified, when they were not. */
  reason?: string;
}

/** Extra options for {@linkcode applyToConn} and {@linkcode applyToListener}. */
export interface ApplyOptions {
  /** TCP_USER_TIMEOUT in milliseconds (> 0); unset leaves the kernel's. */
  userTimeoutMs?: number;
}

function readFd(n: Native, fd: number): EffectiveKeepAlive {
  const { p } = n;
  const errors: string[] = [];
  const read = (name: string, level: number, opt: number | null): number => {
    if (opt === null) return 0;
    try {
      return getInt(n, fd, level, opt);
    } catch (err) {
      errors.push(`read ${name}: ${(err as Error).message}`);
      return NaN;
    }
  };
  const eff: EffectiveKeepAlive = {
    enabled: read("SO_KEEPALIVE", p.SOL_SOCKET, p.SO_KEEPALIVE) > 0,
    idle_s: read("TCP_KEEPIDLE", p.IPPROTO_TCP, p.TCP_KEEPIDLE),
    interval_s: read("TCP_KEEPINTVL", p.IPPROTO_TCP, p.TCP_KEEPINTVL),
    count: read("TCP_KEEPCNT", p.IPPROTO_TCP, p.TCP_KEEPCNT),
    nodelay: read("TCP_NODELAY", p.IPPROTO_TCP, p.TCP_NODELAY) > 0,
    user_timeout_ms: read(
      "TCP_USER_TIMEOUT",
      p.IPPROTO_TCP,
      p.TCP_USER_TIMEOUT,
    ),
    verified: errors.length === 0,
    errors,
  };
  if (!eff.verified) eff.reason = "some options could not be read back";
  return eff;
}

function writeFd(
  n: Native,
  fd: number,
  policy: KeepAlivePolicy,
  opts: ApplyOptions,
): string[] {
  const { p } = n;
  const errors: string[] = [];
  const set = (name: string, level: number, opt: number, value: number) => {
    const err = setInt(n, fd, level, opt, value);
    if (err !== null) errors.push(`${name}=${value}: ${err}`);
  };
  set("SO_KEEPALIVE", p.SOL_SOCKET, p.SO_KEEPALIVE, policy.enabled ? 1 : 0);
  if (policy.idle_s !== null) {
    set("TCP_KEEPIDLE", p.IPPROTO_TCP, p.TCP_KEEPIDLE, policy.idle_s);
  }
  if (policy.interval_s !== null) {
    set("TCP_KEEPINTVL", p.IPPROTO_TCP, p.TCP_KEEPINTVL, policy.interval_s);
  }
  if (policy.count !== null) {
    set("TCP_KEEPCNT", p.IPPROTO_TCP, p.TCP_KEEPCNT, policy.count);
  }
  set("TCP_NODELAY", p.IPPROTO_TCP, p.TCP_NODELAY, 1); // as Go does
  if (opts.userTimeoutMs !== undefined) {
    if (p.TCP_USER_TIMEOUT === null) {
      errors.push(`TCP_USER_TIMEOUT: not available on ${Deno.build.os}`);
    } else {
      const ms = Math.ceil(opts.userTimeoutMs);
      set("TCP_USER_TIMEOUT", p.IPPROTO_TCP, p.TCP_USER_TIMEOUT, ms);
    }
  }
  return errors;
}

function checkOptions(opts: ApplyOptions): void {
  const ms = opts.userTimeoutMs;
  if (ms !== undefined && !(ms > 0 && ms <= 0x7fffffff)) {
    throw new UsageError(
      `TCP_USER_TIMEOUT must be a positive number of milliseconds, not ${ms}`,
    );
  }
}

/** Applies a policy to an fd and reads every option back. */
function applyToFd(
  n: Native,
  fd: number,
  policy: KeepAlivePolicy,
  opts: ApplyOptions,
): EffectiveKeepAlive {
  const errors = writeFd(n, fd, policy, opts);
  const eff = readFd(n, fd);
  eff.errors.unshift(...errors);
  return eff;
}

/** Reads the kernel's keepalive defaults from /proc, or from a fresh socket via FFI. */
export function kernelKeepAliveDefaults(): KernelKeepAlive | null {
  try {
    const read = (name: string) =>
      Number(
        Deno.readTextFileSync(`/proc/sys/net/ipv4/tcp_keepalive_${name}`)
          .trim(),
      );
    const k = {
      idle_s: read("time"),
      interval_s: read("intvl"),
      count: read("probes"),
    };
    if (Object.values(k).every(Number.isInteger)) return k;
  } catch {
    // /proc needs --allow-all in Deno 2; ask a fresh socket instead.
  }
  const n = load();
  if ("reason" in n) return null;
  // An untouched socket reports the namespace's sysctl values.
  const fd = n.libc.socket(n.p.AF_INET, n.p.SOCK_STREAM, 0);
  if (fd < 0) return null;
  try {
    return {
      idle_s: getInt(n, fd, n.p.IPPROTO_TCP, n.p.TCP_KEEPIDLE),
      interval_s: getInt(n, fd, n.p.IPPROTO_TCP, n.p.TCP_KEEPINTVL),
      count: getInt(n, fd, n.p.IPPROTO_TCP, n.p.TCP_KEEPCNT),
    };
  } catch {
    return null;
  } finally {
    n.libc.close(fd);
  }
}

/** What Deno's own API can do without FFI: SO_KEEPALIVE and TCP_NODELAY only. */
function fallback(
  conn: Deno.Conn,
  policy: KeepAlivePolicy,
  reason: string,
): EffectiveKeepAlive {
  const tcp = conn as Partial<Deno.TcpConn>;
  const canSet = typeof tcp.setKeepAlive === "function" &&
    typeof tcp.setNoDelay === "function";
  if (canSet) {
    tcp.setKeepAlive!(policy.enabled);
    tcp.setNoDelay!(true);
  }
  const kernel = kernelKeepAliveDefaults();
  return {
    enabled: canSet ? policy.enabled : false,
    idle_s: kernel?.idle_s ?? null,
    interval_s: kernel?.interval_s ?? null,
    count: kernel?.count ?? null,
    nodelay: canSet,
    user_timeout_ms: 0,
    verified: false,
    errors: [],
    reason: canSet ? reason : `${reason}; this conn has no setKeepAlive`,
  };
}

/**
 * Applies a policy to a TCP or TLS conn: SO_KEEPALIVE, the non-null keepalive
 * values, TCP_NODELAY=1 (as Go does), TCP_USER_TIMEOUT if asked; then reads all
 * of them back. Failed setsockopt calls are listed in `errors`, not hidden.
 * Without FFI it falls back to `setKeepAlive`/`setNoDelay` and returns
 * `verified: false` (see {@linkcode fallbackWarning}).
 */
export function applyToConn(
  conn: Deno.Conn,
  policy: KeepAlivePolicy,
  opts: ApplyOptions = {},
): EffectiveKeepAlive {
  checkOptions(opts);
  const n = load();
  if ("reason" in n) return fallback(conn, policy, n.reason);
  const t = connTarget(conn);
  if (t === null) return fallback(conn, policy, "not a TCP connection");
  const fd = findFd(n, conn, t);
  if (fd === null) {
    return fallback(conn, policy, "the socket's file descriptor was not found");
  }
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
): EffectiveKeepAlive {
  checkOptions(opts);
  const unverified = (reason: string): EffectiveKeepAlive => ({
    enabled: false,
    idle_s: null,
    interval_s: null,
    count: null,
    nodelay: false,
    user_timeout_ms: 0,
    verified: false,
    errors: [],
    reason,
  });
  const n = load();
  if ("reason" in n) return unverified(n.reason);
  const local = fromDenoAddr(listener.addr);
  if (local === null) return unverified("not a TCP listener");
  const fd = findFd(n, listener, { local, peer: null });
  if (fd === null) {
    return unverified("the listener's file descriptor was not found");
  }
  return applyToFd(n, fd, policy, opts);
}

/** Reads a conn's options without changing them; null when FFI is unavailable or the fd is not found. */
export function readSocketOptions(conn: Deno.Conn): EffectiveKeepAlive | null {
  const n = load();
  const t = connTarget(conn);
  if ("reason" in n || t === null) return null;
  const fd = findFd(n, conn, t);
  return fd === null ? null : readFd(n, fd);
}

/** Linux `TCP_INFO` (include/uapi/linux/tcp.h) and the `struct tcp_info` offsets read. */
const TCP_INFO = 11;
const TCPI_LAST_DATA_SENT = 44;
const TCPI_LAST_ACK_RECV = 56;

/** Ages from a socket's `TCP_INFO`, in milliseconds before now. */
export interface TcpTimes {
  /** Since new data was last sent (`tcpi_last_data_sent`). */
  lastDataSentMs: number;
  /** Since an ACK last arrived, keepalive answers included (`tcpi_last_ack_recv`). */
  lastAckRecvMs: number;
}

/**
 * Reads `TCP_INFO` ages (Linux) from a conn whose fd was found earlier, e.g.
 * by {@linkcode applyToConn}. Works after TCP has failed, when `getpeername`
 * no longer does, as long as the conn is not closed; null otherwise.
 */
export function readTcpTimes(conn: Deno.Conn): TcpTimes | null {
  const n = load();
  const fd = fdOf.get(conn);
  const local = fromDenoAddr(conn.localAddr);
  if ("reason" in n || n.p !== LINUX || fd === undefined || local === null) return null;
  lenBuf[0] = addrBuf.length;
  if (n.libc.getsockname(fd, addrBuf, bytes(lenBuf)) !== 0) return null;
  if (!sameAddr(readSockaddr(n.p), local)) return null;
  const info = new Uint8Array(104);
  const len = new Uint32Array([info.length]);
  if (n.libc.getsockopt(fd, n.p.IPPROTO_TCP, TCP_INFO, info, bytes(len)) !== 0) return null;
  if (len[0] < TCPI_LAST_ACK_RECV + 4) return null;
  const view = new DataView(info.buffer);
  return {
    lastDataSentMs: view.getUint32(TCPI_LAST_DATA_SENT, true),
    lastAckRecvMs: view.getUint32(TCPI_LAST_ACK_RECV, true),
  };
}

/**
 * One line saying exactly what is in force when options could not be set,
 * e.g. `keepalive: --allow-ffi not granted; only SO_KEEPALIVE=on was set, so
 * the kernel defaults apply (idle 7200s, interval 75s, count 9), not the
 * requested 15s/15s/9`.
 */
export function fallbackWarning(
  policy: KeepAlivePolicy,
  kernel: KernelKeepAlive | null,
  reason: string = sockoptUnavailableReason() ?? "socket options unavailable",
): string {
  if (!policy.enabled) {
    return `keepalive: ${reason}; SO_KEEPALIVE=off was set, as requested`;
  }
  const defaults = kernel
    ? `idle ${kernel.idle_s}s, interval ${kernel.interval_s}s, count ${kernel.count}`
    : "values unknown: /proc/sys/net/ipv4 is not readable";
  const secs = (v: number | null) => v === null ? "kernel's" : `${v}s`;
  const requested = `${secs(policy.idle_s)}/${secs(policy.interval_s)}/${
    policy.count ?? "kernel's"
  }`;
  const onlyOs = policy.idle_s === null && policy.interval_s === null &&
    policy.count === null;
  return `keepalive: ${reason}; only SO_KEEPALIVE=on was set, so the kernel defaults apply (${defaults})` +
    (onlyOs ? ", as requested" : `, not the requested ${requested}`);
}
