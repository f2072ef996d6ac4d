/**
 * The benchmark's scenarios, as issue 6 defines them, and its command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../app/duration.ts";
import type { Load } from "./loadgen.ts";

/** The scenarios, in the order each run measures them (idle first, on fresh servers). */
export const SCENARIOS = ["idle", "small", "large", "rtt", "client"] as const;

/** One of {@linkcode SCENARIOS}. */
export type Scenario = typeof SCENARIOS[number];

/** small: 64 connections × 8 in flight × 32-byte text. */
export const SMALL: Load = { conns: 64, inflight: 8, size: 32, binary: false };
/** large: 4 connections × 2 in flight × 1 MiB binary. */
export const LARGE: Load = { conns: 4, inflight: 2, size: 1024 * 1024, binary: true };
/** rtt: one connection, one 32-byte text message in flight. */
export const RTT: Load = { conns: 1, inflight: 1, size: 32, binary: false };
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
  /** Where the JSON result goes. */
  outDir: string;
  /** `--workers` for our server (1: a single process). */
  workers: number;
}

/** Help for `deno task bench --help`. */
export const BENCH_HELP = `Usage: deno task bench [flags]

Runs our server, Deno's built-in WebSocket server and npm ws on Node side by side
on loopback, driven by one Go (gorilla/websocket) load generator, interleaved
(A B C A B C …); prints the medians with ratios and writes JSON to bench/results/.

  --runs N            runs of every scenario, median reported (default 3)
  --warmup D          uncounted time at the start of each measurement (default 1s)
  --duration D        counted time of each measurement (default 4s)
  --idle-conns N      connections held in the idle scenario (default ${DEFAULT_IDLE_CONNS})
  --idle-dialers N    concurrent dials while opening them (default ${DEFAULT_IDLE_DIALERS})
  --scenarios LIST    comma-separated subset of ${SCENARIOS.join(",")} (default all)
  --out DIR           where to write the JSON (default bench/results)
  --workers N         run our server with --workers N (default 1); idle RSS and rtt
                      pinning then see only the supervisor, so use it for small/large
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
      scenarios: { type: "string", default: SCENARIOS.join(",") },
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
  const scenarios = v.scenarios.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of scenarios) {
    if (!(SCENARIOS as readonly string[]).includes(s)) {
      throw new Error(`--scenarios: unknown scenario "${s}" (known: ${SCENARIOS.join(", ")})`);
    }
  }
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
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    outDir: v.out,
    workers: count("workers", v.workers),
  };
}
