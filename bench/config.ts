/**
 * The benchmark's scenarios, as issue 6 defines them, and its command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../app/common/duration.ts";
import type { Load, PipelinedLoad } from "./loadgen.ts";
import { SERVER_NAMES, type ServerName } from "./servers.ts";

/** The scenarios, in the order each run measures them (idle first, on fresh servers). */
export const SCENARIOS = [
  "idle",
  "small",
  "large",
  "rtt",
  "accept",
  "storm",
  "pipelined",
  "json",
  "deflate",
  "client",
  "c100k",
] as const;

/** One of {@linkcode SCENARIOS}. */
export type Scenario = typeof SCENARIOS[number];

/** What a plain `deno task bench` runs: everything but c100k (`deno task bench:c100k`). */
export const DEFAULT_SCENARIOS: Scenario[] = SCENARIOS.filter((s) => s !== "c100k");

/** small: 64 connections × 8 in flight × 32-byte text. */
export const SMALL: Load = { conns: 64, inflight: 8, size: 32, binary: false };
/** large: 4 connections × 2 in flight × 1 MiB binary. */
export const LARGE: Load = { conns: 4, inflight: 2, size: 1024 * 1024, binary: true };
/** rtt: one connection, one 32-byte text message in flight. */
export const RTT: Load = { conns: 1, inflight: 1, size: 32, binary: false };
/**
 * json and deflate: 16 connections × 4 in flight × 1 KiB of realistic JSON
 * text (64 distinct documents, bench/loadgen's jsonPayloads), without and
 * with permessage-deflate.
 */
export const JSON_LOAD: Load = { conns: 16, inflight: 4, size: 1024, binary: false, json: true };
/** pipelined: 2 connections, each writing 64 × 1 MiB binary back to back, reading every echo. */
export const PIPELINED: PipelinedLoad = { conns: 2, burst: 64, size: 1024 * 1024 };
/** storm: clients in all, each upgrading, sending one message and waiting for its echo. */
export const DEFAULT_STORM_CLIENTS = 10_000;
/** storm: dialers at once (issue 20: 10,000 × 200). */
export const DEFAULT_STORM_DIALERS = 200;
/** accept: goroutines that each dial, upgrade and close, over and over. */
export const DEFAULT_ACCEPT_DIALERS = 4;
/** c100k: idle connections held at once. */
export const DEFAULT_C100K_CONNS = 100_000;
/** c100k: the servers that hold them, one after the other. */
export const DEFAULT_C100K_SERVERS: ServerName[] = ["ours", "deno", "bun"];
/** client: our client or the built-in one drives the small load against gorilla. */
export const CLIENT: Load = SMALL;
/** idle: connections held open at once. */
export const DEFAULT_IDLE_CONNS = 5_000;
/** idle: dials in progress at once while opening them (the accept rate depends on it). */
export const DEFAULT_IDLE_DIALERS = 64;
/** idle: pause before each RSS reading, so the server has settled. */
export const RSS_SETTLE_MS = 1_000;

/** What one `deno task bench` does. */
export interface BenchConfig {
  /** Runs of every scenario; the table shows the median. */
  runs: number;
  /** Time before counting in each measurement (ms). */
  warmupMs: number;
  /** Time counted in each measurement (ms). */
  durationMs: number;
  /** Connections held in the idle scenario. */
  idleConns: number;
  /** Concurrent dials in the idle scenario. */
  idleDialers: number;
  /** Which scenarios to run. */
  scenarios: Scenario[];
  /** Which servers to measure (the server scenarios). */
  servers: ServerName[];
  /** Dialing goroutines in the accept scenario. */
  acceptDialers: number;
  /** Clients of the storm scenario, and dialers at once. */
  stormClients: number;
  stormDialers: number;
  /** Message size of the pipelined scenario (bytes; 1 MiB unless a smoke test shrinks it). */
  pipelinedSize: number;
  /** Message size of the json and deflate scenarios (bytes; 1 KiB unless a smoke test shrinks it). */
  jsonSize: number;
  /** Connections held in the c100k scenario. */
  c100kConns: number;
  /** Servers that hold them. */
  c100kServers: ServerName[];
  /** Where the JSON result goes. */
  outDir: string;
  /** `--workers` for our server (1: a single process). */
  workers: number;
}

/** Help for `deno task bench --help`. */
export const BENCH_HELP = `Usage: deno task bench [flags]

Runs our server, Deno's built-in WebSocket server, npm ws on Node, Bun (uWebSockets)
and gorilla's Go echo server side by side on loopback, driven by one Go
(gorilla/websocket) load generator, interleaved (A B C D E A B C D E …); prints
the medians with ratios and each server's CPU time per message (utime + stime of
its process tree over the counted window), and writes JSON to bench/results/.

  --runs N            runs of every scenario, median reported (default 3)
  --warmup D          uncounted time at the start of each measurement (default 1s)
  --duration D        counted time of each measurement (default 4s)
  --idle-conns N      connections held in the idle scenario (default ${DEFAULT_IDLE_CONNS})
  --idle-dialers N    concurrent dials while opening them (default ${DEFAULT_IDLE_DIALERS})
  --scenarios LIST    comma-separated subset of ${SCENARIOS.join(",")}
                      (default ${DEFAULT_SCENARIOS.join(",")}; c100k only when named)
  --servers LIST      comma-separated subset of ${SERVER_NAMES.join(",")} (default all)
  --accept-dialers N  goroutines dialing at once in the accept scenario (default ${DEFAULT_ACCEPT_DIALERS})
  --storm-clients N   clients of the storm scenario, each upgrading and waiting for one
                      echo (default ${DEFAULT_STORM_CLIENTS})
  --storm-dialers N   of them dialing at once (default ${DEFAULT_STORM_DIALERS})
  --pipelined-size B  message bytes in the pipelined scenario (default ${PIPELINED.size})
  --json-size B       message bytes in the json and deflate scenarios (default ${JSON_LOAD.size})
  --c100k-conns N     connections the c100k scenario holds (default ${DEFAULT_C100K_CONNS})
  --c100k-servers L   servers that hold them (default ${DEFAULT_C100K_SERVERS.join(",")});
                      ours runs with --workers auto there
  --out DIR           where to write the JSON (default bench/results)
  --workers N         run our server with --workers N (default 1); CPU and idle RSS
                      add up the whole process tree, rtt pinning sees only the supervisor
  -h, --help          show this help`;

/** Parses the bench's flags; throws an Error with one sentence on a bad one. */
export function parseBenchArgs(args: string[], defaultOutDir: string): BenchConfig | null {
  const { values: v } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: "3" },
      warmup: { type: "string", default: "1s" },
      duration: { type: "string", default: "4s" },
      "idle-conns": { type: "string", default: String(DEFAULT_IDLE_CONNS) },
      "idle-dialers": { type: "string", default: String(DEFAULT_IDLE_DIALERS) },
      scenarios: { type: "string", default: DEFAULT_SCENARIOS.join(",") },
      servers: { type: "string", default: SERVER_NAMES.join(",") },
      "accept-dialers": { type: "string", default: String(DEFAULT_ACCEPT_DIALERS) },
      "storm-clients": { type: "string", default: String(DEFAULT_STORM_CLIENTS) },
      "storm-dialers": { type: "string", default: String(DEFAULT_STORM_DIALERS) },
      "pipelined-size": { type: "string", default: String(PIPELINED.size) },
      "json-size": { type: "string", default: String(JSON_LOAD.size) },
      "c100k-conns": { type: "string", default: String(DEFAULT_C100K_CONNS) },
      "c100k-servers": { type: "string", default: DEFAULT_C100K_SERVERS.join(",") },
      out: { type: "string", default: defaultOutDir },
      workers: { type: "string", default: "1" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) return null;
  const count = (name: string, text: string) => {
    if (!/^\d+$/.test(text) || Number(text) < 1) {
      throw new Error(`--${name} takes a whole number of at least 1, got "${text}"`);
    }
    return Number(text);
  };
  const list = <T extends string>(name: string, text: string, known: readonly T[]): T[] => {
    const items = text.split(",").map((s) => s.trim()).filter(Boolean);
    for (const s of items) {
      if (!(known as readonly string[]).includes(s)) {
        throw new Error(`--${name}: unknown name "${s}" (known: ${known.join(", ")})`);
      }
    }
    if (items.length === 0) throw new Error(`--${name} names none`);
    return known.filter((k) => items.includes(k));
  };
  const atLeast = (name: string, text: string, min: number) => {
    const n = count(name, text);
    if (n < min) throw new Error(`--${name} takes at least ${min}, got ${n}`);
    return n;
  };
  const scenarios = list("scenarios", v.scenarios, SCENARIOS);

  const warmupMs = parseDuration(v.warmup);
  const durationMs = parseDuration(v.duration);
  if (warmupMs < 0 || durationMs <= 0) {
    throw new Error("--warmup must not be negative and --duration must be positive");
  }
  return {
    runs: count("runs", v.runs),
    warmupMs,
    durationMs,
    idleConns: count("idle-conns", v["idle-conns"]),
    idleDialers: count("idle-dialers", v["idle-dialers"]),
    scenarios,
    servers: list("servers", v.servers, SERVER_NAMES),
    acceptDialers: count("accept-dialers", v["accept-dialers"]),
    stormClients: count("storm-clients", v["storm-clients"]),
    stormDialers: count("storm-dialers", v["storm-dialers"]),
    pipelinedSize: count("pipelined-size", v["pipelined-size"]),
    jsonSize: atLeast("json-size", v["json-size"], 64),

    c100kConns: count("c100k-conns", v["c100k-conns"]),
    c100kServers: list("c100k-servers", v["c100k-servers"], SERVER_NAMES),
    outDir: v.out,
    workers: count("workers", v.workers),
  };
}
