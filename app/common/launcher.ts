/**
 * The launcher a program was started through, when that is npm (`npx`,
 * `npm exec`, `npm run`), and a watch that says when it is gone.
 *
 * `npx -y deno@2.9.6 task server` runs four processes:
 *
 * ```text
 *   npm exec deno@2.9.6 task server      (node)   ← SIGTERM from docker stop, systemd, kill
 *   └─ sh -c 'deno' task server                   ← npm passes it here; sh dies of it
 *      └─ deno task server                        ← orphaned: never told
 *         └─ deno run … server.ts                 ← orphaned: still serving
 * ```
 *
 * npm passes SIGTERM to its shell, which dies of it without passing it on,
 * and npm exits after it: `deno task` and the program are left to init,
 * still serving, and nobody can wait for them any more. So a program with
 * an npm ancestor watches that npm; once it has ended (however: SIGTERM,
 * SIGKILL, or its child gone), the program stops as on SIGTERM.
 *
 * Nothing is watched without an npm ancestor: `deno task server`, `deno run
 * server.ts`, a systemd unit or a container running either, and `nohup deno
 * task server &` from a shell that later exits all behave as before; nor
 * is anything above npm watched (the shell npx was typed in). Nor when the
 * program was detached on purpose, which shows as SIGHUP ignored (`nohup`)
 * or SIGINT ignored (a shell script's `… &`), even below an npm (a script
 * `"start": "nohup deno task server &"`).
 *
 * A process is read from `/proc/PID/stat` (its parent, its state, and its
 * start time, which tells a reused pid apart), `/proc/PID/cmdline` (npm
 * writes its title, `npm exec …`, there) and `/proc/PID/status` (the
 * signals it ignores). Deno lets a program read another
 * process's `/proc` entries only with `--allow-all`, so they are read
 * through libc, which `--allow-ffi` (granted to both programs for
 * setsockopt) allows already. Off Linux or without FFI nothing is watched.
 *
 * @module
 */

/** What the watch needs of one process. */
export interface ProcEntry {
  /** Its parent's pid. */
  ppid: number;
  /** Its state letter (`R`, `S`, `Z` for a zombie…). */
  state: string;
  /** Its start time (clock ticks since boot), as written. */
  start: string;
  /** Its command line, as far as it was read. */
  argv: string[];
}

/** What reading a process found: its entry, `"gone"`, or `"unknown"` (a read error such as EMFILE). */
export type ProcRead = ProcEntry | "gone" | "unknown";

/** Reads processes from `/proc`; replaceable in tests. */
export interface Proc {
  /** Reads one process. */
  read(pid: number): ProcRead;
  /** The text of `/proc/PID/status`, or null when it cannot be read. */
  status(pid: number): string | null;
}

/** The npm a program was started through. */
export interface Launcher {
  /** npm's pid. */
  pid: number;
  /** Its start time when the watch began, which rules out a reused pid. */
  start: string;
  /** Its command, e.g. `npm exec deno@2.9.6 task server`. */
  command: string;
}

/** How far up the tree npm is looked for. */
const MAX_DEPTH = 32;

/** How often the launcher is checked (ms): well within the 10 s `docker stop` waits. */
export const LAUNCHER_POLL_MS = 1_000;

/**
 * Whether a command line is npm's: `npm …`/`npx …` as npm's title shows it,
 * or `node …/npm-cli.js …` before it sets one.
 */
export function isNpm(argv: string[]): boolean {
  const base = (s: string | undefined) => (s ?? "").split("/").pop() ?? "";
  const first = base((argv[0] ?? "").split(" ")[0]);
  if (first === "npm" || first === "npx") return true;
  return /^node(js)?$/.test(first) && /^(npm|npx)(-cli\.js)?$/.test(base(argv[1]));
}

/**
 * Whether `/proc/PID/status` says the process was detached on purpose:
 * SIGHUP ignored (`nohup`) or SIGINT ignored (started with `&` by a shell
 * script). Read before the program installs its own handlers.
 */
export function detached(status: string): boolean {
  const m = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return false;
  const ignored = BigInt("0x" + m[1]);
  const bit = (signal: number) => (ignored >> BigInt(signal - 1)) & 1n;
  return bit(SIGHUP) === 1n || bit(SIGINT) === 1n;
}

const SIGHUP = 1;
const SIGINT = 2;

/**
 * The nearest npm among the ancestors of the process whose parent is
 * `parent`; null when there is none or a process could not be read.
 */
export function findLauncher(proc: Proc, parent: number): Launcher | null {
  for (let pid = parent, depth = 0; pid > 1 && depth < MAX_DEPTH; depth++) {
    const entry = proc.read(pid);
    if (typeof entry === "string") return null;
    if (isNpm(entry.argv)) return { pid, start: entry.start, command: entry.argv.join(" ").trim() };
    pid = entry.ppid;
  }
  return null;
}

/**
 * Whether the launcher has ended: gone from `/proc`, a zombie, or its pid
 * now another process's. A read that fails otherwise proves nothing.
 */
export function launcherGone(proc: Proc, launcher: Launcher): boolean {
  const entry = proc.read(launcher.pid);
  if (entry === "unknown") return false;
  return entry === "gone" || entry.state === "Z" || entry.state === "X" ||
    entry.start !== launcher.start;
}

/** Where {@linkcode watchLauncher} looks: this process and its parent. */
export interface WatchOptions {
  /** How to read `/proc`; null when it cannot be read (nothing is watched). */
  proc?: Proc | null;
  /** This process. */
  self?: number;
  /** Its parent. */
  parent?: number;
  /** How often to check (ms). */
  everyMs?: number;
}

/**
 * Calls `gone` once, within {@linkcode LAUNCHER_POLL_MS}, after the npm this
 * program was started through has ended. Returns the launcher being
 * watched, or null when there is none or the program was detached
 * (nothing is watched). The timer does not keep the program alive.
 */
export function watchLauncher(
  gone: (launcher: Launcher) => void,
  options: WatchOptions = {},
): Launcher | null {
  const proc = options.proc === undefined ? procReader() : options.proc;
  if (!proc) return null;
  const status = proc.status(options.self ?? Deno.pid);
  if (status === null || detached(status)) return null;
  const launcher = findLauncher(proc, options.parent ?? Deno.ppid);
  if (!launcher) return null;
  const timer = setInterval(() => {
    if (!launcherGone(proc, launcher)) return;
    clearInterval(timer);
    gone(launcher);
  }, options.everyMs ?? LAUNCHER_POLL_MS);
  Deno.unrefTimer(timer);
  return launcher;
}

// ---------------------------------------------------------------------------
// /proc through libc

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const ENOENT = 2;
const ESRCH = 3;

/** Reads `/proc` through libc on Linux when FFI is granted; null elsewhere. */
export function procReader(): Proc | null {
  if (Deno.build.os !== "linux") return null;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  let libc;
  try {
    libc = Deno.dlopen(
      "libc.so.6",
      {
        open: { parameters: ["buffer", "i32"], result: "i32" },
        read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
        close: { parameters: ["i32"], result: "i32" },
        errno: { name: "__errno_location", parameters: [], result: "pointer" },
        memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
      } as const,
    ).symbols;
  } catch {
    return null;
  }
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const buf = new Uint8Array(4096);
  const errnoBuf = new Int32Array(1);
  const errnoPtr = libc.errno();
  /** The file's text (its first 4 KiB), or the errno of a failed open. */
  const readFile = (path: string): string | number => {
    const fd = libc.open(encoder.encode(path + "\0"), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      libc.memcpy(new Uint8Array(errnoBuf.buffer), errnoPtr, 4n);
      return errnoBuf[0];
    }
    try {
      const n = Number(libc.read(fd, buf, BigInt(buf.length)));
      return n < 0 ? -1 : decoder.decode(buf.subarray(0, n));
    } finally {
      libc.close(fd);
    }
  };
  return {
    read(pid) {
      const stat = readFile(`/proc/${pid}/stat`);
      if (typeof stat === "number") return stat === ENOENT || stat === ESRCH ? "gone" : "unknown";
      const cmdline = readFile(`/proc/${pid}/cmdline`);
      return parseProc(stat, typeof cmdline === "string" ? cmdline : "");
    },
    status(pid) {
      const text = readFile(`/proc/${pid}/status`);
      return typeof text === "string" ? text : null;
    },
  };
}

/**
 * Parses `/proc/PID/stat` and `/proc/PID/cmdline`. The command name in
 * stat is in parentheses and may hold spaces and parentheses itself, so
 * the fields are counted from the last `)`: state, ppid, … starttime (22nd).
 */
export function parseProc(stat: string, cmdline: string): ProcRead {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ppid = Number(fields[1]);
  if (fields.length < 20 || !Number.isInteger(ppid)) return "unknown";
  return {
    state: fields[0],
    ppid,
    start: fields[19],
    argv: cmdline.split("\0").filter((arg) => arg !== ""),
  };
}
