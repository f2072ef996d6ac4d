/**
 * Finding the file descriptor of a `Deno.Conn` or `Deno.Listener`, which
 * Deno does not expose. Linux hands out the lowest free fd, so a new
 * connection's fd is almost always one seen freed, or just above the
 * highest one matched. Each candidate is verified with `getsockname` and
 * `getpeername` against the connection's own addresses before any option
 * is touched; only after a bounded number of misses does it scan every fd.
 *
 * @module
 */

import {
  addrBuf,
  type AddrKey,
  bytes,
  denoAddrKey,
  errno,
  F_GETFD,
  getInt,
  lenBuf,
  lenBytes,
  load,
  type Native,
  sockaddrKey,
} from "./libc.ts";

/** What a socket must look like: its local address, and its peer (null = listening). */
export interface Target {
  local: AddrKey;
  peer: AddrKey | null;
  /**
   * Whether a connected socket's type is checked too (SO_TYPE). False only
   * for a caller whose next call is a TCP-level getsockopt, which fails on
   * any other kind of socket and so checks the type for free.
   */
  stream: boolean;
}

type ProbeResult = "match" | "free" | "other";

const counters = { probes: 0, fullScans: 0 };

/** The fd finder's counters: getsockname probes made, and full fd scans. */
export function fdFinderStats(): { probes: number; fullScans: number } {
  return { ...counters };
}

/** Checks whether `fd` is the socket described by `t`, verifying both ends. */
function probe(n: Native, fd: number, t: Target): ProbeResult {
  counters.probes++;
  return t.peer === null
    ? probeListener(n, fd, t.local)
    : probeConnected(n, fd, t.local, t.peer, t.stream);
}

/**
 * A connected socket: the peer first, since every connection of a server
 * shares its local address, so a wrong fd costs one call; its errno tells a
 * free fd (EBADF) from another kind (ENOTSOCK, ENOTCONN) without a second.
 * A wrong fd's peer is remembered ({@linkcode discovered}): in a storm it is
 * usually a connection accepted already whose lookup is still to come.
 */
function probeConnected(
  n: Native,
  fd: number,
  local: AddrKey,
  peer: AddrKey,
  stream: boolean,
): ProbeResult {
  const { libc, p } = n;
  lenBuf[0] = addrBuf.length;
  if (libc.getpeername(fd, addrBuf, lenBytes) !== 0) return failedProbe(n, fd);
  const seen = sockaddrKey(p);
  if (seen !== peer) {
    if (seen !== null) remember(seen, fd);
    return "other";
  }
  lenBuf[0] = addrBuf.length;
  if (libc.getsockname(fd, addrBuf, lenBytes) !== 0 || sockaddrKey(p) !== local) {
    return "other";
  }
  if (!stream) return "match";
  try {
    return getInt(n, fd, p.SOL_SOCKET, p.SO_TYPE) === p.SOCK_STREAM ? "match" : "other";
  } catch {
    return "other";
  }
}

/** A listening socket: the local address, no peer, and SO_ACCEPTCONN. */
function probeListener(n: Native, fd: number, local: AddrKey): ProbeResult {
  const { libc, p } = n;
  lenBuf[0] = addrBuf.length;
  if (libc.getsockname(fd, addrBuf, lenBytes) !== 0) return failedProbe(n, fd);
  if (sockaddrKey(p) !== local) return "other";
  lenBuf[0] = addrBuf.length;
  if (libc.getpeername(fd, addrBuf, lenBytes) === 0) return "other";
  try {
    return getInt(n, fd, p.SOL_SOCKET, p.SO_ACCEPTCONN) !== 0 ? "match" : "other";
  } catch {
    return "other";
  }
}

/** What an fd whose address call failed is: free or not, from errno, else asked with fcntl. */
function failedProbe(n: Native, fd: number): ProbeResult {
  const code = errno(n);
  if (code === n.p.EBADF) return "free";
  if (code === n.p.ENOTSOCK || code === n.p.ENOTCONN) return "other";
  return n.libc.fcntl(fd, F_GETFD, 0) < 0 ? "free" : "other";
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
export const fdOf = new WeakMap<object, number>();
/** fds given back by {@linkcode releaseConn}: Linux will hand the lowest out next. */
const freed = new MinHeap();
const freedSet = new Set<number>();
/** Probed fds that were in use by something else (e.g. a conn not yet applied), newest last. */
const skipped = new Set<number>();
const SKIPPED_MAX = 256;
/**
 * Connected sockets seen by their peer's address (a probe that missed, or a
 * full scan) that nobody had claimed yet: in a reconnect storm the runtime
 * accepts many connections before the program asks for their fds, and the
 * probes for one find the others. Always verified before use; a stale entry
 * (fd closed and reused) misses.
 */
const discovered = new Map<AddrKey, number>();
const DISCOVERED_MAX = 4096;

/** Notes that `fd` is a connected socket whose peer is `peer`, unless it is claimed. */
function remember(peer: AddrKey, fd: number): void {
  if (owners.has(fd)) return;
  if (discovered.size >= DISCOVERED_MAX) discovered.clear();
  discovered.set(peer, fd);
}

/** Records what `fd` is, if it is a connected socket nobody has claimed (getpeername). */
function discover(n: Native, fd: number): void {
  if (owners.has(fd)) return;
  lenBuf[0] = addrBuf.length;
  if (n.libc.getpeername(fd, addrBuf, lenBytes) !== 0) return;
  const peer = sockaddrKey(n.p);
  if (peer !== null) remember(peer, fd);
}

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

/**
 * Lists open fds, or null when the fd directory cannot be read. Deno lets
 * only `--allow-all` read `/dev/fd` (it is `/proc/self/fd`), so on Linux
 * the directory is read through libc when Deno refuses: without a list, a
 * full scan would probe every fd up to the limit (20,000 probes a scan were
 * seen under `deno task server`).
 */
function listFds(n: Native): number[] | null {
  try {
    return [...Deno.readDirSync(n.p.FD_DIR)]
      .map((e) => Number(e.name))
      .filter((x) => Number.isInteger(x))
      .sort((a, b) => a - b);
  } catch {
    return Deno.build.os === "linux" ? listFdsByLibc(n) : null;
  }
}

/** glibc's `struct dirent` on Linux: `d_name` starts at byte 19 (after ino, off, reclen, type). */
const DIRENT_NAME = 19;
const direntBuf = new Uint8Array(DIRENT_NAME + 256);
const PROC_FD = new TextEncoder().encode("/proc/self/fd\0");

/** The open fds from `/proc/self/fd` through opendir/readdir, or null. */
function listFdsByLibc(n: Native): number[] | null {
  const { libc } = n;
  const dir = libc.opendir(PROC_FD);
  if (dir === null) return null;
  const fds: number[] = [];
  try {
    for (let entry = libc.readdir(dir); entry !== null; entry = libc.readdir(dir)) {
      libc.memcpy(direntBuf, entry, BigInt(direntBuf.length));
      let fd = 0;
      let i = DIRENT_NAME;
      for (; direntBuf[i] >= 0x30 && direntBuf[i] <= 0x39; i++) fd = fd * 10 + direntBuf[i] - 0x30;
      if (i > DIRENT_NAME && direntBuf[i] === 0) fds.push(fd);
    }
  } finally {
    libc.closedir(dir);
  }
  return fds.sort((a, b) => a - b);
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
 * Scans every fd. Also records the lowest free fds it passes, and the
 * connected sockets not yet claimed, so the next lookups find their fd at
 * once or among the candidates.
 */
function fullScan(n: Native, t: Target): number | null {
  counters.fullScans++;
  const listed = listFds(n);
  const fds = listed ?? Array.from({ length: fdLimit(n) }, (_, i) => i);
  const open = listed ? new Set(listed) : null;
  let gaps = 0;
  let found: number | null = null;
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
    if (r === "match") {
      found = fd;
      continue; // on, to note the others for the lookups to come
    }
    if (r === "free") noteFree(fd);
    else discover(n, fd);
  }
  return found;
}

/** Finds and verifies the fd of a conn or listener, or returns null. */
export function findFd(n: Native, self: object, t: Target): number | null {
  const cached = fdOf.get(self);
  if (cached !== undefined) {
    if (probe(n, cached, t) === "match") return cached;
    fdOf.delete(self);
    if (owners.get(cached)?.deref() === self) owners.delete(cached);
  }
  const fd = fromDiscovered(n, t) ?? findAmongCandidates(n, t, self) ?? fullScan(n, t);
  return fd === null ? null : claim(fd, self);
}

/** The fd seen with `t`'s peer, verified; null when none (or it is stale). */
function fromDiscovered(n: Native, t: Target): number | null {
  if (t.peer === null || discovered.size === 0) return null;
  const fd = discovered.get(t.peer);
  if (fd === undefined) return null;
  discovered.delete(t.peer);
  return !owners.has(fd) && probe(n, fd, t) === "match" ? fd : null;
}

/**
 * What a conn's socket must look like: its two addresses as keys; null when
 * it is not TCP over IP. `stream: false` leaves out the type check (see
 * {@linkcode Target}).
 */
export function connTarget(conn: Deno.Conn, stream = true): Target | null {
  const local = denoAddrKey(conn.localAddr);
  const peer = denoAddrKey(conn.remoteAddr);
  return local !== null && peer !== null ? { local, peer, stream } : null;
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

/** Closes `conn` (one already closed is fine) and forgets its fd, as {@linkcode releaseConn}. */
export function closeConn(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
  releaseConn(conn);
}

/** `F_DUPFD`, the same on Linux and macOS: duplicate onto the lowest free fd. */
const F_DUPFD = 0;

/**
 * A second file descriptor for a TCP listener's socket (`fcntl(F_DUPFD)`),
 * for handing the bound, listening socket to another owner (`node:net`'s
 * `listen({ fd })`): the socket stays open, and connections keep queueing
 * in its backlog, after the listener itself is closed. Null when FFI is
 * unavailable or the fd is not found.
 */
export function dupListenerFd(listener: Deno.Listener): number | null {
  const n = load();
  const local = denoAddrKey(listener.addr);
  if ("reason" in n || local === null) return null;
  const fd = findFd(n, listener, { local, peer: null, stream: true });
  if (fd === null) return null;
  const dup = n.libc.fcntl(fd, F_DUPFD, 0);
  return dup < 0 ? null : dup;
}
