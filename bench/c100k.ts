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
 * load generator dials from 127.0.0.2 … 127.0.0.N (about 20,000 connections
 * per source address) to the server on 127.0.0.1. Server and load generator
 * start through `prlimit` with RLIMIT_NOFILE raised. Everything, the
 * namespace included, is removed afterwards.
 *
 * @module
 */

import { RSS_SETTLE_MS } from "./config.ts";
import { runIdle } from "./loadgen.ts";
import { alive, processTree, treeRssBytes } from "./procfs.ts";
import { type PeerPrograms, type ServerName, startEchoServer } from "./servers.ts";

/** Open files allowed to the server and the load generator (Linux's default fs.nr_open). */
export const C100K_NOFILE = 1_048_576;
/** Connections per source address: well below the 28,232 ephemeral ports of Linux's default range. */
export const CONNS_PER_SOURCE = 20_000;
/** Dials in progress at once while opening them. */
export const C100K_DIALERS = 64;
/** Read and write buffer of each load generator connection: they stay idle. */
const LOADGEN_BUFFER = 1024;
/** Opening may take this long per 1,000 connections before the run is given up. */
const OPEN_MS_PER_1000 = 2_000;
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
    await run("ip", ["netns", "exec", this.name, "ip", "link", "set", "lo", "up"]);
  }

  /** Words that run a command inside it with RLIMIT_NOFILE raised (both exec it, pid stays). */
  prefix(): string[] {
    return ["ip", "netns", "exec", this.name, "prlimit", `--nofile=${C100K_NOFILE}`, "--"];
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
  }
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
 * doc). Our server runs with `--workers auto` and its default heartbeat.
 */
export async function runC100k(
  name: ServerName,
  conns: number,
  loadgen: string,
  programs: PeerPrograms,
  log: (line: string) => void,
): Promise<C100kSample> {
  await using ns = new Namespace();
  await ns.create();
  const server = await startEchoServer(name, {
    workers: "auto",
    prefix: ns.prefix(),
    programs,
  });
  const pids = new Set(processTree(server.pid));
  try {
    await sleep(RSS_SETTLE_MS);
    const before = treeRssBytes(server.pid);
    const localIps = Math.ceil(conns / CONNS_PER_SOURCE);
    log(`c100k ${name}: opening ${conns} connections from ${localIps} source address(es)…`);
    const r = await runIdle(loadgen, server.url, {
      conns,
      dialers: C100K_DIALERS,
      localIps,
      buffer: LOADGEN_BUFFER,
      read: true,
      prefix: ns.prefix(),
      timeoutMs: 60_000 + Math.ceil(conns / 1000) * OPEN_MS_PER_1000,
      serverPid: server.pid,
      onProgress: (open) => log(`c100k ${name}: ${open} open`),
    }, async () => {
      await sleep(RSS_SETTLE_MS);
      for (const p of processTree(server.pid)) pids.add(p);
      const rss = treeRssBytes(server.pid);
      const ss = await run("ip", [
        "netns",
        "exec",
        ns.name,
        "ss",
        "-tnoH",
        "state",
        "established",
        `( sport = :${server.port} )`,
      ]);
      return { rss, census: parseSs(ss) };
    });
    const { rss, census } = r.measured;
    const timers = Object.entries(census.timers).map(([k, n]) => `${k} ${n}`).join(", ");
    return {
      values: {
        open_s: r.seconds,
        accept_per_s: r.accept_per_s,
        ...(r.cpu_s === null ? {} : { cpu_us_per_conn: (r.cpu_s * 1e6) / conns }),
        rss_mib: rss / 2 ** 20,
        rss_per_conn_kib: (rss - before) / conns / 1024,
        sockets: census.sockets,
        keepalive_ok: census.keepaliveOk,
        closed_early: r.closed_early ?? NaN,
      },
      note: `${census.sockets} established server sockets, timers: ${timers || "none"}; ` +
        `${census.keepaliveOk} with keepalive due within ${KEEPALIVE_MAX_S} s` +
        (name === "ours" ? `; ${pids.size} process(es) (--workers auto)` : ""),
      pid: server.pid,
    };
  } finally {
    await server[Symbol.asyncDispose]();
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
