/**
 * The neutral load generator (bench/loadgen/main.go, on Debian's Go and
 * gorilla/websocket): installs the toolchain when missing, builds it once per
 * source version, and runs its modes.
 *
 * @module
 */

import { Child, runJson } from "./proc.ts";
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

function cacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ||
    `${Deno.env.get("HOME") || Deno.makeTempDirSync()}/.cache`;
  return `${base}/keepalive-ws-bench`;
}

/**
 * Returns the path of a built load generator: installs Go and gorilla from
 * Debian when missing, and builds offline (GOPATH mode, no module download)
 * into a cache keyed by the source's hash.
 */
export async function ensureLoadgen(log: (line: string) => void): Promise<string> {
  if (!(await goVersion()) || !(await exists(GORILLA_DIR))) await aptInstall(log);
  const source = await Deno.readFile(repoPath("bench/loadgen/main.go"));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", source));
  const hash = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const dir = cacheDir();
  const bin = `${dir}/loadgen-${hash}`;
  if (await exists(bin)) return bin;
  await Deno.mkdir(dir, { recursive: true });
  log("building the Go load generator…");
  const out = await new Deno.Command("go", {
    args: ["build", "-o", bin, "."],
    cwd: repoPath("bench/loadgen/"),
    env: {
      GO111MODULE: "off",
      GOPATH: DEBIAN_GOPATH,
      GOCACHE: `${dir}/go-build`,
      GOFLAGS: "",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`go build failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return bin;
}

function loadArgs(url: string, load: Load, timing: Timing): string[] {
  return [
    `-url=${url}`,
    `-conns=${load.conns}`,
    `-inflight=${load.inflight}`,
    `-size=${load.size}`,
    `-binary=${load.binary}`,
    `-warmup=${timing.warmupMs}ms`,
    `-duration=${timing.durationMs}ms`,
  ];
}

/** Drives `url` with `load` and returns the echo rate. */
export async function runThroughput(
  bin: string,
  url: string,
  load: Load,
  timing: Timing,
): Promise<ThroughputResult> {
  const r = await runJson("loadgen throughput", bin, [
    "throughput",
    ...loadArgs(url, load, timing),
  ]);
  return r as unknown as ThroughputResult;
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
): Promise<RttResult> {
  const load = { conns: 1, inflight: 1, size, binary: false };
  const args = ["rtt", ...loadArgs(url, load, timing)];
  const r = cpu === undefined
    ? await runJson("loadgen rtt", bin, args)
    : await runJson("loadgen rtt", "taskset", ["-c", cpu, bin, ...args]);
  return r as unknown as RttResult;
}

/**
 * Opens `conns` idle connections to `url`, calls `measure` while they are all
 * held, then closes them. Returns the accept rate and what `measure` returned.
 */
export async function runIdle<T>(
  bin: string,
  url: string,
  conns: number,
  dialers: number,
  measure: () => Promise<T>,
): Promise<{ accept_per_s: number; measured: T }> {
  await using child = new Child("loadgen idle", bin, [
    "idle",
    `-url=${url}`,
    `-conns=${conns}`,
    `-dialers=${dialers}`,
  ], "stdin");
  const held = await child.waitEvent("held", 120_000);
  const measured = await measure();
  const status = await child.stop();
  if (!status.success) {
    throw new Error(`loadgen idle failed (exit ${status.code}): ${child.stderrTail.trim()}`);
  }
  return { accept_per_s: Number(held.accept_per_s), measured };
}

/** Starts gorilla's echo server (the neutral target of the client scenario). */
export async function startGorillaEcho(bin: string): Promise<{ url: string; child: Child }> {
  const child = new Child("gorilla echo", bin, ["serve", "-addr=127.0.0.1:0"], "stdin");
  try {
    const event = await child.waitEvent("listening");
    return { url: `ws://${event.addr}/echo`, child };
  } catch (err) {
    await child.stop();
    throw err;
  }
}
