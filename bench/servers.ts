/**
 * The echo servers under test, each a child process on loopback: ours
 * (`server.ts`), Deno's built-in WebSocket server, npm `ws` on Node.js, Bun's
 * `Bun.serve` (uWebSockets) and gorilla/websocket's echo server in Go.
 *
 * @module
 */

import { Child } from "./proc.ts";

/** The servers, in the order every scenario visits them (A B C D E A B C D E …). */
export const SERVER_NAMES = ["ours", "deno", "ws", "bun", "gorilla"] as const;

/** One of {@linkcode SERVER_NAMES}. */
export type ServerName = typeof SERVER_NAMES[number];

/** What each server is, for the table and the JSON. */
export const SERVER_LABELS: Record<ServerName, string> = {
  ours: "keepalive-ws server.ts (hand-written RFC 6455, heartbeat and keepalive on)",
  deno: "Deno built-in (Deno.serve + Deno.upgradeWebSocket)",
  ws: "npm ws on Node.js (keepalive 15 s)",
  bun: "Bun.serve (uWebSockets, C++), from npm @oven/bun-linux-x64, Bun's defaults",
  gorilla: "gorilla/websocket echo in Go (Debian golang-github-gorilla-websocket-dev; " +
    "Go's 15 s keepalive)",
};

const ROOT = new URL("../", import.meta.url);

/** What each server runs with permessage-deflate on (the json and deflate scenarios). */
export const DEFLATE_LABELS: Record<ServerName, string> = {
  ours: "server.ts --compression (context takeover where the client allows it, 256-byte threshold)",
  deno: "not measured: Deno's built-in WebSocket server does not implement permessage-deflate",
  ws: "perMessageDeflate: true (ws's defaults: context takeover where allowed, 1 KiB threshold)",
  bun: "perMessageDeflate: true, ws.send(message, true) (uWebSockets' shared compressor)",
  gorilla: "Upgrader{EnableCompression: true} (no context takeover, its only mode)",
};

/** The label of ours with compression when server.ts has no --compression flag. */
export const OURS_DEFLATE_PEER_LABEL =
  "bench/peers/ours_deflate.ts: serve() from mod.ts with compression: true (server.ts has no " +
  "--compression flag yet); context takeover where the client allows it, 256-byte threshold";

/** How our server runs with permessage-deflate: server.ts's own flag, or the stand-in peer. */
export type OursDeflate = "flag" | "peer";

/** Whether `server.ts --help` lists `--compression`: then it runs ours with compression. */
export async function oursDeflate(): Promise<OursDeflate> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-ffi",
        "--allow-read",
        "--allow-run",
        repoPath("server.ts"),
        "--help",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return /--compression\b/.test(text) ? "flag" : "peer";
  } catch {
    return "peer";
  }
}

/** A path inside the repository. */
export function repoPath(path: string): string {
  return new URL(path, ROOT).pathname;
}

/** A running echo server. */
export interface RunningServer extends AsyncDisposable {
  /** Which server this is. */
  readonly name: ServerName;
  /** Its process id: the root of the tree whose CPU and RSS are measured. */
  readonly pid: number;
  /** The echo endpoint, `ws://127.0.0.1:PORT/echo`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** The child process. */
  readonly child: Child;
}

/** The peers' programs that are not in the repository. */
export interface PeerPrograms {
  /** The `bun` binary (see bench/bun.ts). */
  bun?: string;
  /** The built gorilla echo server (bench/peers/gorilla_echo). */
  gorilla?: string;
}

/** How to start a server. */
export interface StartOptions {
  /** Extra `deno run` flags for our server, e.g. `--cpu-prof`. */
  denoFlags?: string[];
  /** `--workers` for our server (default 1). */
  workers?: number | "auto";
  /** Words to run the server through, e.g. `ip netns exec NS prlimit …`; they must exec it. */
  prefix?: string[];
  /** Where the peers' programs are. */
  programs?: PeerPrograms;
  /**
   * Turn permessage-deflate on (the server still speaks uncompressed to a
   * client that does not offer it); ours as {@linkcode oursDeflate} says.
   * Deno's built-in server cannot.
   */
  compression?: OursDeflate;
}

/** How many workers `--workers value` starts on this machine. */
export function workersOf(value: number | "auto" | undefined): number {
  return value === "auto" ? navigator.hardwareConcurrency || 1 : value ?? 1;
}

function command(name: ServerName, options: StartOptions): [string, string[], "stdin" | "SIGTERM"] {
  const deno = Deno.execPath();
  const deflate = options.compression !== undefined;
  switch (name) {
    case "ours":
      if (options.compression === "peer") {
        return [deno, [
          "run",
          "--allow-net",
          "--allow-ffi",
          "--allow-read",
          ...(options.denoFlags ?? []),
          repoPath("bench/peers/ours_deflate.ts"),
        ], "stdin"];
      }
      return [deno, [
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
        ...(deflate ? ["--compression"] : []),
      ], "SIGTERM"];
    case "deno":
      if (deflate) throw new Error(`deno: ${DEFLATE_LABELS.deno}`);
      return [deno, ["run", "--allow-net", repoPath("bench/peers/deno_builtin.ts")], "stdin"];
    case "ws":
      return [
        "node",
        [repoPath("bench/peers/ws_node.cjs"), ...(deflate ? ["--deflate"] : [])],
        "stdin",
      ];
    case "bun": {
      const bun = options.programs?.bun;
      if (!bun) throw new Error("no Bun to run the bun peer with (see bench/bun.ts)");
      return [
        bun,
        [repoPath("bench/peers/bun_echo.js"), ...(deflate ? ["--deflate"] : [])],
        "stdin",
      ];
    }
    case "gorilla": {
      const bin = options.programs?.gorilla;
      if (!bin) throw new Error("the gorilla echo peer is not built (see bench/loadgen.ts)");
      return [bin, ["-addr=127.0.0.1:0", ...(deflate ? ["-compression"] : [])], "stdin"];
    }
  }
}

/** Starts `name` on a free loopback port and resolves once it (every worker) is listening. */
export async function startEchoServer(
  name: ServerName,
  options: StartOptions = {},
): Promise<RunningServer> {
  const [cmd, args, stopBy] = command(name, options);
  const [program, ...rest] = [...(options.prefix ?? []), cmd, ...args];
  const child = new Child(name, program, rest, stopBy);
  try {
    // Our supervisor says "workers" once every worker listens; a single process says "listening".
    const supervised = name === "ours" && workersOf(options.workers) > 1;
    const event = await child.waitEvent(supervised ? "workers" : "listening");
    const port = supervised ? Number(event.port) : Number(String(event.addr).split(":").pop());
    return {
      name,
      pid: child.pid,
      url: `ws://127.0.0.1:${port}/echo`,
      port,
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
