/**
 * libc through `Deno.dlopen`: the option numbers of each OS, loading the
 * library once (when `--allow-ffi` allows it), and the small wrappers the
 * rest of `lib/tcp` uses: getsockopt/setsockopt on ints, errno as text, and
 * `struct sockaddr` parsing.
 *
 * @module
 */

import { errorText } from "../errors.ts";

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
  /** errno `EBADF` (no such fd), `ENOTSOCK` (an fd, not a socket) and `ENOTCONN` (a socket with no peer). */
  EBADF: number;
  /** See {@linkcode SockoptPlatform.EBADF}. */
  ENOTSOCK: number;
  /** See {@linkcode SockoptPlatform.EBADF}. */
  ENOTCONN: number;
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
  EBADF: 9,
  ENOTSOCK: 88,
  ENOTCONN: 107,
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
  EBADF: 9,
  ENOTSOCK: 38,
  ENOTCONN: 57,
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
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  strlen: { parameters: ["pointer"], result: "usize" },
  // Reads memory without Deno.UnsafePointerView, which needs unrestricted FFI.
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
  // Lists a directory that Deno lets only --allow-all read (/proc/self/fd).
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
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

/** libc, loaded, with this OS's option numbers. */
export interface Native {
  libc: Libc;
  p: SockoptPlatform;
  /** `&errno` of this thread, fetched once. */
  errnoPtr: Deno.PointerValue;
}

/** `F_GETFD`, the same on Linux and macOS: fails only for a closed fd. */
export const F_GETFD = 1;

let loaded: Native | { reason: string } | undefined;

/** Opens libc once, if this OS is supported and FFI is granted for it. */
export function load(): Native | { reason: string } {
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
      lastError = errorText(err);
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

/** Scratch buffers for one call at a time (JavaScript is single-threaded). */
export const intBuf = new Int32Array(1);
/** A `socklen_t` in and out. */
export const lenBuf = new Uint32Array(1);
/** A `struct sockaddr_storage`. */
export const addrBuf = new Uint8Array(128);

/** The bytes of a typed array, for FFI buffer parameters. */
export function bytes(a: Int32Array | Uint32Array | BigUint64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** {@linkcode intBuf} and {@linkcode lenBuf} as bytes, made once: every accept reads options. */
export const intBytes = bytes(intBuf);
/** See {@linkcode intBytes}. */
export const lenBytes = bytes(lenBuf);

const errnoBuf = new Int32Array(1);

/** The calling thread's errno; read right after the failed call. */
export function errno(n: Native): number {
  if (n.errnoPtr === null) return 0;
  n.libc.memcpy(bytes(errnoBuf), n.errnoPtr, 4n);
  return errnoBuf[0];
}

/** errno as text: strerror and the number. */
export function errnoText(n: Native, code: number): string {
  const ptr = n.libc.strerror(code);
  const len = ptr === null ? 0 : Number(n.libc.strlen(ptr));
  if (ptr === null || len === 0 || len > 1024) return `errno ${code}`;
  const text = new Uint8Array(len);
  n.libc.memcpy(text, ptr, BigInt(len));
  return `${new TextDecoder().decode(text)} (errno ${code})`;
}

/** getsockopt for an int option; returns the value or throws with errno's text. */
export function getInt(n: Native, fd: number, level: number, opt: number): number {
  lenBuf[0] = 4;
  if (n.libc.getsockopt(fd, level, opt, intBytes, lenBytes) !== 0) {
    throw new Error(errnoText(n, errno(n)));
  }
  return intBuf[0];
}

/** setsockopt for an int option; returns null or errno's text. */
export function setInt(
  n: Native,
  fd: number,
  level: number,
  opt: number,
  value: number,
): string | null {
  intBuf[0] = value;
  if (n.libc.setsockopt(fd, level, opt, intBytes, 4) === 0) return null;
  return errnoText(n, errno(n));
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

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

/**
 * An IP address and port as one comparable value: a number for IPv4
 * (address · 65536 + port, exact in a double), a string for IPv6. Two
 * sockets' ends are the same address exactly when their keys are equal.
 */
export type AddrKey = number | string;

function v6Key(ip: Uint8Array, port: number): string {
  let key = "";
  for (let i = 0; i < 16; i++) key += ip[i].toString(16).padStart(2, "0");
  return `${key}|${port}`;
}

/** The key of a dotted quad and port, or null when `text` is not one (no regular expression: every accept asks). */
function v4Key(text: string, port: number): number | null {
  let ip = 0, octet = 0, digits = 0, dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || ++dots > 3) return null;
      ip = ip * 256 + octet;
      octet = digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      octet = octet * 10 + c - 0x30;
      digits++;
      if (octet > 255) return null;
    } else {
      return null;
    }
  }
  if (dots !== 3 || digits === 0) return null;
  return (ip * 256 + octet) * 65536 + port;
}

/** A Deno TCP address as a key, or null for anything that is not TCP over IP. */
export function denoAddrKey(addr: Deno.Addr): AddrKey | null {
  if (addr.transport !== "tcp") return null;
  const v4 = v4Key(addr.hostname, addr.port);
  if (v4 !== null) return v4;
  // ipBytes() takes the dotted quads v4Key() takes: what is left is IPv6 or nothing.
  const parsed = ipBytes(addr.hostname);
  return parsed?.family === 6 ? v6Key(parsed.ip, addr.port) : null;
}

/** The key of the `sockaddr_in`/`sockaddr_in6` in {@linkcode addrBuf}, or null for another family. */
export function sockaddrKey(p: SockoptPlatform): AddrKey | null {
  const b = addrBuf;
  // Linux: u16 family in host order (little-endian on every supported CPU);
  // BSD: u8 length, then u8 family.
  const family = p.SOCKADDR_HAS_LEN ? b[1] : b[0] | (b[1] << 8);
  const port = (b[2] << 8) | b[3];
  if (family === p.AF_INET) return (((b[4] * 256 + b[5]) * 256 + b[6]) * 256 + b[7]) * 65536 + port;
  if (family === p.AF_INET6) return v6Key(b.subarray(8, 24), port);
  return null;
}
