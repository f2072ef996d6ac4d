/**
 * What the benchmark reads about a server from Linux's /proc: its process
 * tree (the server and every descendant, e.g. our `--workers`), their CPU time
 * (utime + stime of /proc/PID/stat) and their resident memory (VmRSS).
 *
 * @module
 */

/** CPU time of each process of a tree, in clock ticks, at one moment. */
export type CpuSnapshot = Map<number, number>;

let ticksPerSecond: number | null = null;

/** sysconf()'s name for clock ticks per second in Linux's libc (glibc and musl). */
const SC_CLK_TCK = 2;

/**
 * Clock ticks per second (USER_HZ) of /proc/PID/stat's utime and stime and of
 * /proc/net/tcp's timers: sysconf(_SC_CLK_TCK), what `getconf CLK_TCK` prints,
 * asked of libc once through Deno.dlopen (so no getconf program is needed).
 */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond !== null) return ticksPerSecond;
  let n: number;
  try {
    const libc = Deno.dlopen("libc.so.6", { sysconf: { parameters: ["i32"], result: "i64" } });
    try {
      n = Number(libc.symbols.sysconf(SC_CLK_TCK));
    } finally {
      libc.close();
    }
  } catch (err) {
    throw new Error(
      `cannot ask libc.so.6 for sysconf(_SC_CLK_TCK): ${err instanceof Error ? err.message : err}`,
    );
  }
  if (!Number.isInteger(n) || n <= 0) throw new Error(`sysconf(_SC_CLK_TCK) said ${n}`);
  return ticksPerSecond = n;
}

/** The fields of /proc/PID/stat after the command name (which may hold spaces), or null. */
function statFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null; // Gone.
  }
  // "PID (comm) S PPID …": field 3 (state) is index 0 here.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** `pid` and all its live descendants, found through each process's parent in /proc/*\/stat. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const fields = statFields(Number(entry.name));
    if (!fields) continue;
    const ppid = Number(fields[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(entry.name));
    else children.set(ppid, [Number(entry.name)]);
  }
  const tree: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    if (!statFields(p)) continue;
    tree.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** utime + stime of every process in `pids` (all its threads), in clock ticks; the gone are left out. */
export function cpuSnapshot(pids: number[]): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const pid of pids) {
    const f = statFields(pid);
    // utime and stime are fields 14 and 15 of proc(5), indexes 11 and 12 here.
    if (f) snap.set(pid, Number(f[11]) + Number(f[12]));
  }
  return snap;
}

/**
 * CPU seconds spent between two snapshots of one tree. A process seen only at
 * the end started in between, so all of its time counts; one seen only at the
 * start exited in between, and its last ticks are lost (its parent gets them
 * only when it reaps it).
 */
export function cpuSecondsBetween(start: CpuSnapshot, end: CpuSnapshot): number {
  let ticks = 0;
  for (const [pid, t] of end) ticks += t - (start.get(pid) ?? 0);
  return ticks / clockTicksPerSecond();
}

/**
 * Measures the CPU time of the tree under `pid` over a window whose ends the
 * caller marks: `start()` and `end()` read /proc at once (synchronously), so
 * call them the moment the load generator reports taking its counters.
 */
export class CpuWindow {
  #pids: number[];
  #root: number;
  #start: CpuSnapshot | null = null;
  #end: CpuSnapshot | null = null;

  /** Finds the tree now, so the marks only read the stat files. */
  constructor(pid: number) {
    this.#root = pid;
    this.#pids = processTree(pid);
  }

  /** Marks the start of the counted window. */
  start(): void {
    this.#start = cpuSnapshot(this.#pids);
  }

  /** Marks its end; a process that joined the tree meanwhile counts whole. */
  end(): void {
    this.#end = cpuSnapshot(this.#pids);
    const joined = processTree(this.#root).filter((p) => !this.#pids.includes(p));
    for (const [pid, t] of cpuSnapshot(joined)) this.#end.set(pid, t);
  }

  /** CPU seconds of the window; throws when a mark is missing. */
  seconds(): number {
    if (!this.#start || !this.#end) {
      throw new Error("the load generator did not mark both ends of its counted window");
    }
    return cpuSecondsBetween(this.#start, this.#end);
  }
}

/** The resident set size of process `pid` in bytes, from /proc/PID/status VmRSS (0 if gone). */
export function rssBytes(pid: number): number {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return 0;
  }
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The resident set size of `pid` and all its descendants, summed, in bytes. */
export function treeRssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + rssBytes(p), 0);
}

/** Whether `pid` is a live process (a zombie has exited). */
export function alive(pid: number): boolean {
  const f = statFields(pid);
  return f !== null && f[0] !== "Z";
}
