/**
 * The c100k scenario: one server holds 100,000 idle WebSocket connections at
 * once. It measures how long opening them all takes, the resident memory of
 * the server's whole process tree, and whether every server-side socket
 * really has TCP keepalive armed (`ss -o` shows each socket's timer).
 *
 * It runs in a network namespace of its own (`ip netns`), server and load
 * generator both on its loopback: 100,000 connections use up the ephemeral
 * ports of an address, and in the machine's own namespace that would make
 * other programs' `listen(port 0)` and `connect()` fail while it runs. The
 * load generator dials from 127.0.0.2 … 127.0.0.N (at most 10,000 connections
 * per source address) to the server on 127.0.0.1. Server and load generator
 * start through `prlimit` with RLIMIT_NOFILE raised to 1,048,576 where this
 * machine lets it be raised (CAP_SYS_RESOURCE), else to the hard limit in
 * force. Under a low hard limit one process cannot hold them all: the load
 * generator then runs as several processes, our server gets as many workers
 * as it needs (more than `--workers auto` if need be, and the output says so),
 * and a single-process peer that cannot hold the count is not run, with the
 * reason printed. Everything, the namespace included, is removed afterwards.
 *
 * @module
 */

import { RSS_SETTLE_MS } from "./config.ts";
import { Child } from "./proc.ts";
import { alive, CpuWindow, processTree, treeRssBytes } from "./procfs.ts";
import { type PeerPrograms, type ServerName, startEchoServer, workersOf } from "./servers.ts";

/** Open files asked for the server and the load generator (Linux's default fs.nr_open). */
export const C100K_NOFILE = 1_048_576;
/** Open files each process keeps for itself besides its connections. */
const NOFILE_RESERVE = 2_000;
/**
 * Connections per source address. Linux's default range has 28,232 ephemeral
 * ports, and bind() to port 0 searches the odd half first: past ~14,000 per
 * address every further bind scans the whole range and opening slows to a crawl.
 */
export const CONNS_PER_SOURCE = 10_000;
/** Dials in progress at once while opening them (shared out among the load generator processes). */
export const C100K_DIALERS = 64;
/** Read and write buffer of each load generator connection: they stay idle. */
const LOADGEN_BUFFER = 1024;
/** Opening them all may take this long per 1,000 connections (plus a minute) before the run is given up. */
const OPEN_MS_PER_1000 = 5_000;
/** How long a process may take to close its share of the connections and exit. */
const STOP_MS = 60_000;
/** Keepalive timers longer than this do not count as Go's (15 s idle, 15 s interval). */
export const KEEPALIVE_MAX_S = 15;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What `ss` says about the server's established sockets. */
export interface SocketCensus {
  /** Established sockets on the server's port. */
  sockets: number;
  /** Of them, those whose armed timer is keepalive, due within {@linkcode KEEPALIVE_MAX_S}. */
  keepaliveOk: number;
  /** Timer kinds seen, e.g. `{keepalive: 99999, on: 1}`; `none` for no timer. */
  timers: Record<string, number>;
}

/** Seconds in an `ss` timer figure such as `14sec`, `1min12sec`, `2h3min` or `300ms`. */
export function ssSeconds(text: string): number {
  let s = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|sec|min|h|d)/g)) {
    s += Number(n) * { ms: 0.001, sec: 1, min: 60, h: 3600, d: 86400 }[unit as "ms"];
  }
  return s;
}

/** Counts the sockets and their keepalive timers in `ss -tnoH state established` output. */
export function parseSs(output: string): SocketCensus {
  const census: SocketCensus = { sockets: 0, keepaliveOk: 0, timers: {} };
  for (const line of output.split("\n")) {
    if (!/^\s*\d+\s+\d+\s+\S+:\d+\s+\S+:\d+/.test(line)) continue;
    census.sockets++;
    const m = /timer:\((\w+),([^,]*),\d+\)/.exec(line);
    const kind = m ? m[1] : "none";
    census.timers[kind] = (census.timers[kind] ?? 0) + 1;
    if (m && kind === "keepalive" && ssSeconds(m[2]) <= KEEPALIVE_MAX_S) census.keepaliveOk++;
  }
  return census;
}

async function run(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${command} ${args.join(" ")} failed: ${err || `exit ${out.code}`}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Namespaces in use, removed (with what runs inside) when the bench is interrupted. */
const live = new Set<Namespace>();

function onInterrupt(): void {
  const sync = (args: string[]) => {
    try {
      return new Deno.Command("ip", { args, stdout: "piped", stderr: "null" }).outputSync();
    } catch {
      return null;
    }
  };
  for (const ns of live) {
    const out = sync(["netns", "pids", ns.name]);
    for (const pid of new TextDecoder().decode(out?.stdout ?? new Uint8Array()).split("\n")) {
      try {
        if (pid) Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    sync(["netns", "del", ns.name]);
  }
  console.error("bench: interrupted; the c100k namespace and its processes are removed");
  Deno.exit(130);
}

/** A network namespace with its loopback up, removed with every process left in it. */
class Namespace implements AsyncDisposable {
  readonly name = `kws-c100k-${Deno.pid}-${Date.now() % 100_000}`;

  /** Creates it; throws one sentence when `ip netns` cannot. */
  async create(): Promise<void> {
    try {
      await run("ip", ["netns", "add", this.name]);
    } catch (err) {
      throw new Error(
        `c100k needs a network namespace of its own (root and iproute2's ip): ${
          err instanceof Error ? err.message : err
        }`,
      );
    }
    if (live.size === 0) {
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        Deno.addSignalListener(signal, onInterrupt);
      }
    }
    live.add(this);
    await run("ip", ["netns", "exec", this.name, "ip", "link", "set", "lo", "up"]);
  }

  /** Words that run a command inside it with RLIMIT_NOFILE `nofile` (both exec it, pid stays). */
  prefix(nofile: number): string[] {
    return ["ip", "netns", "exec", this.name, "prlimit", `--nofile=${nofile}:${nofile}`, "--"];
  }

  /** Kills what is left inside (only processes this run started can be there), then removes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      const pids = (await run("ip", ["netns", "pids", this.name])).split("\n").filter(Boolean);
      for (const pid of pids) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      if (pids.length) await sleep(500);
    } catch {
      // No such namespace.
    }
    try {
      await run("ip", ["netns", "del", this.name]);
    } catch {
      // Never made.
    }
    live.delete(this);
    if (live.size === 0) {
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        Deno.removeSignalListener(signal, onInterrupt);
      }
    }
  }
}

/** The open-file limit the c100k processes can get, and whether it could be raised. */
export interface NofileLimit {
  /** RLIMIT_NOFILE (soft = hard) each process runs with. */
  limit: number;
  /** False when CAP_SYS_RESOURCE is missing and the hard limit in force had to do. */
  raised: boolean;
}

/** Finds out whether RLIMIT_NOFILE can be raised to {@linkcode C100K_NOFILE} here. */
export async function nofileLimit(): Promise<NofileLimit> {
  const probe = await new Deno.Command("prlimit", {
    args: [`--nofile=${C100K_NOFILE}:${C100K_NOFILE}`, "true"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  if (probe?.success) return { limit: C100K_NOFILE, raised: true };
  const limits = await Deno.readTextFile(`/proc/${Deno.pid}/limits`);
  const m = /^Max open files\s+\d+\s+(\d+)/m.exec(limits);
  if (!m) throw new Error("cannot read the open-file limit from /proc/PID/limits");
  return { limit: Number(m[1]), raised: false };
}

/** How c100k spreads `conns` over processes under `limit` open files each. */
export interface C100kPlan {
  /** Connections one process may hold. */
  perProcess: number;
  /** Load generator processes and the connections and source addresses of each. */
  loadgens: { conns: number; firstIp: number; ips: number }[];
  /** Workers our server runs with. */
  workers: number;
}

/** Splits the work so that no process needs more than `limit` open files. */
export function planC100k(conns: number, limit: number): C100kPlan {
  const perProcess = Math.max(1, limit - NOFILE_RESERVE);
  const count = Math.ceil(conns / perProcess);
  const loadgens: C100kPlan["loadgens"] = [];
  let firstIp = 2;
  for (let k = 0; k < count; k++) {
    const n = Math.floor(conns / count) + (k < conns % count ? 1 : 0);
    const ips = Math.ceil(n / CONNS_PER_SOURCE);
    loadgens.push({ conns: n, firstIp, ips });
    firstIp += ips;
  }
  if (firstIp > 255) {
    throw new Error(`${conns} connections need more source addresses than 127.0.0.2–254`);
  }
  // SO_REUSEPORT spreads connections by hash: leave each worker room for the spread.
  const workers = Math.max(workersOf("auto"), Math.ceil(conns / (perProcess * 0.95)));
  return { perProcess, loadgens, workers };
}

/** A c100k run that could not be made or did not get them all open: why, in words. */
export interface C100kMiss {
  /** No figures. */
  values: Record<string, never>;
  /** Why. */
  note: string;
}

/** What one c100k run measured. */
export interface C100kSample {
  /** Figures for the table. */
  values: Record<string, number>;
  /** The timers seen, in words. */
  note: string;
  /** The server's root process. */
  pid: number;
}

/**
 * Makes `name` hold `conns` idle connections and measures it (see the module
 * doc). Our server runs with `--workers auto` (more where the open-file limit
 * needs it) and its default heartbeat; the load generator reads every
 * connection, so pings are answered. Returns a note and no figures when
 * `name` is one process and cannot hold `conns` here, or when a connection
 * could not be opened (the load generator's dial or upgrade failed).
 */
export async function runC100k(
  name: ServerName,
  conns: number,
  loadgen: string,
  programs: PeerPrograms,
  nofile: NofileLimit,
  log: (line: string) => void,
): Promise<C100kSample | C100kMiss> {
  const plan = planC100k(conns, nofile.limit);
  const limitText = `RLIMIT_NOFILE ${nofile.limit}` +
    (nofile.raised ? "" : " (the hard limit; raising it needs CAP_SYS_RESOURCE, missing here)");
  if (name !== "ours" && conns > plan.perProcess) {
    return {
      values: {},
      note: `not run: one ${name} process can hold at most ${plan.perProcess} connections ` +
        `under ${limitText}`,
    };
  }
  const auto = workersOf("auto");
  const workers = name === "ours" ? (plan.workers === auto ? "auto" : plan.workers) : undefined;
  await using ns = new Namespace();
  await ns.create();
  const prefix = ns.prefix(nofile.limit);
  const server = await startEchoServer(name, { workers, prefix, programs });
  const pids = new Set(processTree(server.pid));
  const children: Child[] = [];
  try {
    await sleep(RSS_SETTLE_MS);
    const before = treeRssBytes(server.pid);
    const ips = plan.loadgens.reduce((n, l) => n + l.ips, 0);
    log(
      `c100k ${name}: opening ${conns} connections from ${plan.loadgens.length} load generator ` +
        `process(es) and ${ips} source address(es)` +
        (workers === undefined ? "" : `, our server with --workers ${workers}`) + "…",
    );
    const window = new CpuWindow(server.pid);
    const open = new Map<number, number>();
    const progress = setInterval(() => {
      log(`c100k ${name}: ${[...open.values()].reduce((a, b) => a + b, 0)} open`);
    }, 5_000);
    const dialers = Math.max(1, Math.round(C100K_DIALERS / plan.loadgens.length));
    window.start();
    const t0 = performance.now();
    let seconds: number;
    try {
      const held = plan.loadgens.map((l, k) => {
        const child = new Child(`loadgen idle ${k + 1}`, prefix[0], [
          ...prefix.slice(1),
          loadgen,
          "idle",
          `-url=${server.url}`,
          `-conns=${l.conns}`,
          `-dialers=${dialers}`,
          `-local-ip-first=${l.firstIp}`,
          `-local-ips=${l.ips}`,
          `-buffer=${LOADGEN_BUFFER}`,
          "-read=true",
        ], "stdin");
        children.push(child);
        child.onEvent("progress", (e) => open.set(k, Number(e.open)));
        return child.waitEvent("held", 60_000 + Math.ceil(conns / 1000) * OPEN_MS_PER_1000)
          .then(() => open.set(k, l.conns));
      });
      try {
        await Promise.all(held);
      } catch (err) {
        // A server that cannot hold them all is a result, not a crash of the bench.
        const reached = [...open.values()].reduce((a, b) => a + b, 0);
        const why = err instanceof Error ? err.message : String(err);
        return {
          values: {},
          note: `FAILED after ${((performance.now() - t0) / 1000).toFixed(0)} s with about ` +
            `${reached} of ${conns} open: ${why.replace(/\s+/g, " ").slice(0, 300)}`,
        };
      }
      seconds = (performance.now() - t0) / 1000;
      window.end();
    } finally {
      clearInterval(progress);
    }
    await sleep(RSS_SETTLE_MS);
    for (const p of processTree(server.pid)) pids.add(p);
    const rss = treeRssBytes(server.pid);
    const census = parseSs(
      await run("ip", [
        "netns",
        "exec",
        ns.name,
        "ss",
        "-tnoH",
        "state",
        "established",
        // The source address too: a client socket bound to 127.0.0.N may get the same port number.
        `( src 127.0.0.1 and sport = :${server.port} )`,
      ]),
    );
    // The figures are taken: a load generator slow to close 100,000 connections is only noted.
    const closing = children.map((c) => c.waitEvent("closing", STOP_MS).catch(() => null));
    const statuses = await Promise.all(children.map((c) => c.stop(STOP_MS)));
    const troubles = statuses.flatMap((s, k) =>
      s.success ? [] : [`load generator ${k + 1} ended with ${s.signal ?? `exit ${s.code}`}`]
    );
    const closedEarly = (await Promise.all(closing)).reduce(
      (n, e) => n + (e ? Number(e.closed_early) : NaN),
      0,
    );
    const timers = Object.entries(census.timers).map(([k, n]) => `${k} ${n}`).join(", ");
    return {
      values: {
        open_s: seconds,
        accept_per_s: conns / seconds,
        cpu_us_per_conn: (window.seconds() * 1e6) / conns,
        rss_mib: rss / 2 ** 20,
        rss_per_conn_kib: (rss - before) / conns / 1024,
        sockets: census.sockets,
        keepalive_ok: census.keepaliveOk,
        closed_early: closedEarly,
      },
      note: `${census.sockets} established server sockets, timers: ${timers || "none"}; ` +
        `${census.keepaliveOk} with keepalive due within ${KEEPALIVE_MAX_S} s; ` +
        `${pids.size} server process(es)` +
        (workers === undefined ? "" : ` (--workers ${workers}`) +
        (workers === undefined || workers === "auto"
          ? ""
          : `: --workers auto (${auto}) cannot hold ${conns} under ${limitText}`) +
        (workers === undefined ? "" : ")") +
        `; ${plan.loadgens.length} load generator process(es)` +
        (troubles.length ? `; at teardown: ${troubles.join(", ")}` : ""),
      pid: server.pid,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop(STOP_MS)));
    await server.child.stop(STOP_MS);
    for (const pid of pids) {
      if (alive(pid)) {
        log(`c100k ${name}: process ${pid} still running after stop; killing it`);
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
    }
  }
}
