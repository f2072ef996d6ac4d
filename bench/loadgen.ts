/**
 * The neutral load generator (bench/loadgen/main.go, on Debian's Go and
 * gorilla/websocket): installs the toolchain when missing, builds it (and the
 * gorilla echo peer) once per source version, and runs its modes, reading the
 * server's CPU time at the moments the load generator marks its window.
 *
 * @module
 */

import { Child, runMarked } from "./proc.ts";
import { CpuWindow } from "./procfs.ts";
import { repoPath } from "./servers.ts";

/** The packages the load generator needs, from Debian. */
export const DEBIAN_PACKAGES = ["golang-go", "golang-github-gorilla-websocket-dev"];
/** Where Debian installs Go library sources (a GOPATH). */
const DEBIAN_GOPATH = "/usr/share/gocode";
const GORILLA_DIR = `${DEBIAN_GOPATH}/src/github.com/gorilla/websocket`;

/** What one load generator run is asked to do. */
export interface Load {
  /** Connections. */
  conns: number;
  /** Messages in flight per connection. */
  inflight: number;
  /** Message size in bytes. */
  size: number;
  /** Binary (true) or text (false) messages. */
  binary: boolean;
  /** Realistic JSON text of exactly `size` bytes instead (64 distinct documents). */
  json?: boolean;
}

/** Time before counting starts and time counted, in ms. */
export interface Timing {
  /** Not counted: connections open, JITs warm up. */
  warmupMs: number;
  /** Counted. */
  durationMs: number;
}

/** Result of the `throughput` mode. */
export interface ThroughputResult {
  /** Messages echoed per second. */
  msgs_per_s: number;
  /** Payload megabytes (10^6) echoed per second. */
  mbytes_per_s: number;
  /** Messages counted. */
  messages: number;
  /** The Sec-WebSocket-Extensions the server answered ("" for none). */
  extensions?: string;
  /** With `wire`: payload bytes the load generator sent in the window. */
  sent_bytes?: number;
  /** With `wire`: payload bytes echoed in the window. */
  bytes?: number;
  /** With `wire`: TCP bytes the server sent in the window. */
  wire_in?: number;
  /** With `wire`: TCP bytes the load generator sent in the window. */
  wire_out?: number;
}

/** How the throughput mode's connections are set up. */
export interface ThroughputOptions {
  /** Offer permessage-deflate (gorilla's only mode: no context takeover either way). */
  compress?: boolean;
  /** Count the bytes on the TCP connections (the compression ratio). */
  wire?: boolean;
}

/** Result of the `rtt` mode. */
export interface RttResult {
  /** Median round trip, µs. */
  p50_us: number;
  /** 99th percentile round trip, µs. */
  p99_us: number;
  /** Round trips counted. */
  samples: number;
}

/** The Go toolchain's version line, or null when `go` cannot run. */
export async function goVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("go", { args: ["version"], stdout: "piped", stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function aptInstall(log: (line: string) => void): Promise<void> {
  log(`installing ${DEBIAN_PACKAGES.join(" ")} with apt-get (the load generator needs them)…`);
  const run = async (args: string[]) => {
    const out = await new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return out;
  };
  let out = await run(["install", "-y", "-qq", ...DEBIAN_PACKAGES]);
  if (!out.success) {
    await run(["update", "-qq"]);
    out = await run(["install", "-y", "-qq", ...DEBIAN_PACKAGES]);
  }
  if (!out.success) {
    throw new Error(
      `apt-get could not install ${DEBIAN_PACKAGES.join(" ")}: ` +
        new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" "),
    );
  }
}

/** Where built Go programs are kept between runs. */
function cacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ||
    `${Deno.env.get("HOME") || Deno.makeTempDirSync()}/.cache`;
  return `${base}/keepalive-ws-bench`;
}

/**
 * Returns the path of the Go program in the repository folder `dir` (e.g.
 * "bench/loadgen/"), built: installs Go and gorilla from Debian when missing,
 * and builds offline (GOPATH mode, no module download) into a cache keyed by
 * the source's hash.
 */
export async function ensureGoProgram(
  dir: string,
  name: string,
  log: (line: string) => void,
): Promise<string> {
  if (!(await goVersion()) || !(await exists(GORILLA_DIR))) await aptInstall(log);
  const source = await Deno.readFile(repoPath(`${dir}main.go`));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", source));
  const hash = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const cache = cacheDir();
  const bin = `${cache}/${name}-${hash}`;
  if (await exists(bin)) return bin;
  await Deno.mkdir(cache, { recursive: true });
  log(`building ${dir}main.go…`);
  const out = await new Deno.Command("go", {
    args: ["build", "-o", bin, "."],
    cwd: repoPath(dir),
    env: {
      GO111MODULE: "off",
      GOPATH: DEBIAN_GOPATH,
      GOCACHE: `${cache}/go-build`,
      GOFLAGS: "",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`go build of ${dir} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return bin;
}

/** The built load generator (bench/loadgen/main.go). */
export function ensureLoadgen(log: (line: string) => void): Promise<string> {
  return ensureGoProgram("bench/loadgen/", "loadgen", log);
}

/** The built gorilla echo server peer (bench/peers/gorilla_echo/main.go). */
export function ensureGorillaEcho(log: (line: string) => void): Promise<string> {
  return ensureGoProgram("bench/peers/gorilla_echo/", "gorilla_echo", log);
}

function loadArgs(url: string, load: Load, timing: Timing): string[] {
  return [
    `-url=${url}`,
    `-conns=${load.conns}`,
    `-inflight=${load.inflight}`,
    `-size=${load.size}`,
    `-binary=${load.binary}`,
    `-json=${load.json ?? false}`,
    `-warmup=${timing.warmupMs}ms`,
    `-duration=${timing.durationMs}ms`,
  ];
}

/** Runs a timed mode (see {@linkcode runMarked}), measuring the tree of `serverPid`. */
function runTimed(
  label: string,
  command: string,
  args: string[],
  timing: Timing,
  serverPid?: number,
): Promise<{ result: Record<string, unknown>; cpuSeconds: number | null }> {
  return runMarked(label, command, args, timing.warmupMs + timing.durationMs, serverPid);
}

/** Drives `url` with `load`; with `serverPid`, also returns the server's CPU seconds in the window. */
export async function runThroughput(
  bin: string,
  url: string,
  load: Load,
  timing: Timing,
  serverPid?: number,
  options: ThroughputOptions = {},
): Promise<ThroughputResult & { cpu_s: number | null }> {
  const { result, cpuSeconds } = await runTimed(
    "loadgen throughput",
    bin,
    [
      "throughput",
      ...loadArgs(url, load, timing),
      `-compress=${options.compress ?? false}`,
      `-wire=${options.wire ?? false}`,
    ],
    timing,
    serverPid,
  );
  return { ...(result as unknown as ThroughputResult), cpu_s: cpuSeconds };
}

/**
 * Measures round trips of one `size`-byte text message on one connection;
 * with `cpu`, the load generator runs pinned to that CPU (through taskset).
 */
export async function runRtt(
  bin: string,
  url: string,
  size: number,
  timing: Timing,
  cpu?: string,
  serverPid?: number,
): Promise<RttResult & { cpu_s: number | null }> {
  const load = { conns: 1, inflight: 1, size, binary: false };
  const args = ["rtt", ...loadArgs(url, load, timing)];
  const { result, cpuSeconds } = cpu === undefined
    ? await runTimed("loadgen rtt", bin, args, timing, serverPid)
    : await runTimed("loadgen rtt", "taskset", ["-c", cpu, bin, ...args], timing, serverPid);
  return { ...(result as unknown as RttResult), cpu_s: cpuSeconds };
}

/** Result of the `accept` mode. */
export interface AcceptResult {
  /** Connections upgraded in the window (each then closed). */
  accepts: number;
  /** Of them per second. */
  accepts_per_s: number;
  /** Dials or upgrades that failed in the window. */
  errors: number;
  /** The first failure's text, or "". */
  first_error: string;
}

/** `dialers` goroutines each dial, upgrade and close, over and over: the accept rate. */
export async function runAccept(
  bin: string,
  url: string,
  dialers: number,
  timing: Timing,
  serverPid?: number,
): Promise<AcceptResult & { cpu_s: number | null }> {
  const { result, cpuSeconds } = await runTimed(
    "loadgen accept",
    bin,
    [
      "accept",
      `-url=${url}`,
      `-dialers=${dialers}`,
      `-warmup=${timing.warmupMs}ms`,
      `-duration=${timing.durationMs}ms`,
    ],
    timing,
    serverPid,
  );
  return { ...(result as unknown as AcceptResult), cpu_s: cpuSeconds };
}

/** Result of the `storm` mode. */
export interface StormResult {
  /** Clients in all, and how many were echoed. */
  clients: number;
  echoed: number;
  /** Clients that failed (dial, upgrade or echo), and the first error. */
  errors: number;
  first_error: string;
  /** The whole storm, from the first dial to the last close (s). */
  storm_s: number;
  /** Connect + upgrade + echo, per client (ms). */
  p50_ms: number;
  p99_ms: number;
}

/**
 * A reconnect storm: `clients` clients through `dialers` concurrent dialers,
 * each upgrading, sending one message and waiting for its echo; with
 * `serverPid`, also the server's CPU seconds over the whole storm.
 */
export async function runStorm(
  bin: string,
  url: string,
  clients: number,
  dialers: number,
  serverPid?: number,
): Promise<StormResult & { cpu_s: number | null }> {
  const { result, cpuSeconds } = await runMarked(
    "loadgen storm",
    bin,
    ["storm", `-url=${url}`, `-count=${clients}`, `-dialers=${dialers}`],
    STORM_BOUND_MS,
    serverPid,
  );
  return { ...(result as unknown as StormResult), cpu_s: cpuSeconds };
}

/** The longest a storm may take before the bench gives up on it. */
const STORM_BOUND_MS = 300_000;

/** What the `pipelined` mode is asked to do. */
export interface PipelinedLoad {
  /** Connections, each writing bursts. */
  conns: number;
  /** Messages written back to back per burst. */
  burst: number;
  /** Binary message size in bytes. */
  size: number;
}

/** Result of the `pipelined` mode. */
export interface PipelinedResult extends ThroughputResult {
  /** Messages written over the whole run (warm-up and drain too). */
  sent: number;
  /** Echoes read over the whole run. */
  echoed: number;
  /** Messages written on a connection that ended before their echo came. */
  lost: number;
  /** Connections that ended under load (the server closed them, or an echo never came). */
  closes: number;
  /** Failed dials. */
  dial_errors: number;
  /** Why connections ended, e.g. `{"close 1008 send queue overflow": 3}`. */
  outcomes: Record<string, number>;
}

/** Bursts of `load.burst` binary messages per connection, every echo read concurrently. */
export async function runPipelined(
  bin: string,
  url: string,
  load: PipelinedLoad,
  timing: Timing,
  serverPid?: number,
): Promise<PipelinedResult & { cpu_s: number | null }> {
  const { result, cpuSeconds } = await runTimed(
    "loadgen pipelined",
    bin,
    [
      "pipelined",
      `-url=${url}`,
      `-conns=${load.conns}`,
      `-burst=${load.burst}`,
      `-size=${load.size}`,
      `-warmup=${timing.warmupMs}ms`,
      `-duration=${timing.durationMs}ms`,
    ],
    timing,
    serverPid,
  );
  return { ...(result as unknown as PipelinedResult), cpu_s: cpuSeconds };
}

/** How the idle mode opens its connections. */
export interface IdleOptions {
  /** Connections to open and hold. */
  conns: number;
  /** Dials in progress at once. */
  dialers: number;
  /** Dial from 127.0.0.2 … 127.0.0.(N+1), round robin (0: the kernel picks). */
  localIps?: number;
  /** Read and write buffer bytes per connection (default 64 KiB read). */
  buffer?: number;
  /** Read every connection (answers pings, counts connections the server ends). */
  read?: boolean;
  /** Words that run the load generator, e.g. `ip netns exec NS prlimit …` (they must exec it). */
  prefix?: string[];
  /** How long opening them all may take. */
  timeoutMs?: number;
  /** The server's pid: its CPU while they are opened is returned. */
  serverPid?: number;
  /** Called with the number open, every 5 s while opening. */
  onProgress?: (open: number) => void;
}

/** What the idle mode returns. */
export interface IdleResult<T> {
  /** Connections opened per second. */
  accept_per_s: number;
  /** Seconds to open them all. */
  seconds: number;
  /** The server's CPU seconds while they were opened (with `serverPid`). */
  cpu_s: number | null;
  /** Connections the server ended while they were held (with `read`). */
  closed_early: number | null;
  /** What `measure` returned. */
  measured: T;
}

/**
 * Opens `options.conns` idle connections to `url`, calls `measure` while they
 * are all held, then closes them.
 */
export async function runIdle<T>(
  bin: string,
  url: string,
  options: IdleOptions,
  measure: () => Promise<T>,
): Promise<IdleResult<T>> {
  const args = [
    "idle",
    `-url=${url}`,
    `-conns=${options.conns}`,
    `-dialers=${options.dialers}`,
    `-local-ips=${options.localIps ?? 0}`,
    `-buffer=${options.buffer ?? 0}`,
    `-read=${options.read ?? false}`,
  ];
  const prefix = options.prefix ?? [];
  const [command, ...rest] = [...prefix, bin, ...args];
  const window = options.serverPid === undefined ? null : new CpuWindow(options.serverPid);
  await using child = new Child("loadgen idle", command, rest, "stdin");
  child.onEvent("window", () => window?.start());
  child.onEvent("held", () => window?.end());
  if (options.onProgress) child.onEvent("progress", (e) => options.onProgress!(Number(e.open)));
  const held = await child.waitEvent("held", options.timeoutMs ?? 120_000);
  const measured = await measure();
  const closing = child.waitEvent("closing", 60_000).catch(() => null);
  const status = await child.stop();
  if (!status.success) {
    throw new Error(`loadgen idle failed (exit ${status.code}): ${child.stderrTail.trim()}`);
  }
  const end = await closing;
  return {
    accept_per_s: Number(held.accept_per_s),
    seconds: Number(held.seconds),
    cpu_s: window ? window.seconds() : null,
    closed_early: end && options.read ? Number(end.closed_early) : null,
    measured,
  };
}
