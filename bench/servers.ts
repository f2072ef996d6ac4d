/**
 * The echo servers under test, each a child process on loopback: ours
 * (`server.ts`), Deno's built-in WebSocket server, and npm `ws` on Node.js.
 *
 * @module
 */

import { Child } from "./proc.ts";

/** The servers, in the order every scenario visits them (A B C A B C …). */
export const SERVER_NAMES = ["ours", "deno", "ws"] as const;

/** One of {@linkcode SERVER_NAMES}. */
export type ServerName = typeof SERVER_NAMES[number];

/** What each server is, for the table and the JSON. */
export const SERVER_LABELS: Record<ServerName, string> = {
  ours: "keepalive-ws server.ts (hand-written RFC 6455, heartbeat and keepalive on)",
  deno: "Deno built-in (Deno.serve + Deno.upgradeWebSocket)",
  ws: "npm ws on Node.js",
};

const ROOT = new URL("../", import.meta.url);

/** A path inside the repository. */
export function repoPath(path: string): string {
  return new URL(path, ROOT).pathname;
}

/** A running echo server. */
export interface RunningServer extends AsyncDisposable {
  /** Which server this is. */
  readonly name: ServerName;
  /** Its process id (the process whose RSS is measured). */
  readonly pid: number;
  /** The echo endpoint, `ws://127.0.0.1:PORT/echo`. */
  readonly url: string;
  /** The child process. */
  readonly child: Child;
}

/** Extra `deno run` flags for our server, e.g. `--cpu-prof`. */
export interface StartOptions {
  /** Flags placed before the script name. */
  denoFlags?: string[];
  /** `--workers` for our server (default 1). */
  workers?: number;
}

/** Starts `name` on a free loopback port and resolves once it is listening. */
export async function startEchoServer(
  name: ServerName,
  options: StartOptions = {},
): Promise<RunningServer> {
  const deno = Deno.execPath();
  let child: Child;
  switch (name) {
    case "ours":
      child = new Child(name, deno, [
        "run",
        "--allow-net",
        "--allow-ffi",
        "--allow-read",
        "--allow-run",
        ...(options.denoFlags ?? []),
        repoPath("server.ts"),
        `--workers=${options.workers ?? 1}`,
        "--addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
      ], "SIGTERM");
      break;
    case "deno":
      child = new Child(name, deno, [
        "run",
        "--allow-net",
        repoPath("bench/peers/deno_builtin.ts"),
      ], "stdin");
      break;
    case "ws":
      child = new Child(name, "node", [repoPath("bench/peers/ws_node.cjs")], "stdin");
      break;
  }
  try {
    const event = await child.waitEvent("listening");
    return {
      name,
      pid: child.pid,
      url: `ws://${event.addr}/echo`,
      child,
      [Symbol.asyncDispose]: async () => {
        await child.stop();
      },
    };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

/** The resident set size of process `pid` in bytes, from /proc/PID/status VmRSS. */
export function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/**
 * Sets the CPU affinity of every thread of `pid` to `cpus` (taskset syntax,
 * e.g. "0" or "0-1"); returns false when taskset is not available.
 */
export async function setAffinity(pid: number, cpus: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("taskset", {
      args: ["-a", "-p", "-c", cpus, String(pid)],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Every CPU of this machine, in taskset syntax. */
export function allCpus(): string {
  return `0-${Math.max(0, navigator.hardwareConcurrency - 1)}`;
}
