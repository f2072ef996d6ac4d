/**
 * Subprocesses under test, read the way a user or a log shipper would: JSON
 * log events parsed from stderr as they arrive (stdout for peers that print
 * there), and the raw output. One class, {@linkcode Program}, runs
 * `server.ts`, `client.ts` (with exactly the permissions of their
 * `deno task` entries), a foreign peer or a tool, here or inside a network
 * namespace.
 *
 * Every process is killed (SIGKILL) and reaped on dispose, so a failing test
 * leaves nothing running: `await using server = await startServer();`.
 *
 * @module
 */

import { EventLog, type LogEvent, type WaitForEventOptions } from "./log.ts";
import { pathOf } from "./needs.ts";
import { type Condition, DEFAULT_WAIT_MS } from "./wait.ts";

export type { LogEvent } from "./log.ts";
export { DEFAULT_WAIT_MS } from "./wait.ts";

/** The flags `deno task NAME` runs `NAME.ts` with, read from deno.json so tests use exactly those. */
export function taskFlags(name: "server" | "client"): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  return String(config.tasks[name]).split(/\s+/).filter((arg) => arg.startsWith("--"));
}

/** The permissions `deno task client` runs with. */
export const PERMISSIONS: string[] = taskFlags("client");

/** The repository root, where `server.ts` and `client.ts` live. */
export const ROOT = new URL("../../", import.meta.url);

/** Where iproute2 is installed on Debian; `ip netns exec` runs a program inside a namespace. */
export const IP: string = pathOf("ip");

/** How a process ended. */
export interface Exit {
  /** The exit code (128 + signal number when killed by a signal). */
  code: number;
  /** Everything it wrote to stdout. */
  stdout: string;
  /** Everything it wrote to stderr. */
  stderr: string;
}

/** Options of {@linkcode Program.start} and {@linkcode Program.spawn}. */
export interface StartOptions {
  /** Give the process a stdin pipe (default: /dev/null). */
  stdin?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Run inside this network namespace (`ip netns exec NS …`, which execs the program). */
  ns?: string;
}

/** Options of {@linkcode Program.spawn} only. */
export interface SpawnOptions extends StartOptions {
  /** Start from an empty environment plus `env`. */
  clearEnv?: boolean;
  /** The working directory; the repository root by default. */
  cwd?: string | URL;
  /** Which stream carries the JSON events: stderr (our programs, the default) or stdout. */
  events?: "stderr" | "stdout";
}

/** A running subprocess, its output and JSON events collected as they arrive. */
export class Program<E extends { event: string } = LogEvent> implements AsyncDisposable {
  /** The process. */
  readonly child: Deno.ChildProcess;
  /** Everything read from stdout so far. */
  stdout = "";
  /** Everything read from stderr so far. */
  stderr = "";
  /** The JSON events parsed so far, in order. */
  readonly events: E[];
  /** Resolves with the exit code once the process has ended and its pipes are drained. */
  readonly exited: Promise<number>;

  readonly #log: EventLog<E>;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #ended = false;

  private constructor(child: Deno.ChildProcess, piped: boolean, events: "stderr" | "stdout") {
    this.child = child;
    this.#log = new EventLog<E>({
      hopeless: () => this.#ended ? "the process ended" : undefined,
      context: () => this.output(),
    });
    this.events = this.#log.events;
    if (piped) this.#stdin = child.stdin.getWriter();
    const drained = Promise.all([
      this.#pump(child.stdout, events === "stdout", (t) => this.stdout += t),
      this.#pump(child.stderr, events === "stderr", (t) => this.stderr += t),
    ]);
    this.exited = Promise.all([child.status, drained]).then(([status]) => {
      this.#ended = true;
      this.#log.wake();
      return status.code;
    });
  }

  /** Starts `script` (`server.ts` or `client.ts`, from the repository root) with `args`. */
  static start(script: string, args: string[], options: StartOptions = {}): Program {
    return Program.spawn(Deno.execPath(), [
      "run",
      ...taskFlags(script.replace(/\.ts$/, "") as "server" | "client"),
      new URL(script, ROOT).pathname,
      ...args,
    ], { ...options, env: { NO_COLOR: "1", ...options.env } });
  }

  /** Starts any `command` with `args`, e.g. a foreign peer whose events are on stdout. */
  static spawn<E extends { event: string } = LogEvent>(
    command: string,
    args: string[],
    options: SpawnOptions = {},
  ): Program<E> {
    const argv = options.ns ? [IP, "netns", "exec", options.ns, command, ...args] : [
      command,
      ...args,
    ];
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: options.cwd ?? ROOT,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: options.env,
      clearEnv: options.clearEnv,
    }).spawn();
    return new Program<E>(child, options.stdin ?? false, options.events ?? "stderr");
  }

  /** The process id (of the program itself, also inside a namespace). */
  get pid(): number {
    return this.child.pid;
  }

  /** Whether the process has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Writes `text` to the process's stdin. */
  async write(text: string): Promise<void> {
    if (!this.#stdin) throw new Error("this process was started without a stdin pipe");
    await this.#stdin.write(new TextEncoder().encode(text));
  }

  /** Closes stdin: the process sees EOF. */
  async closeStdin(): Promise<void> {
    const w = this.#stdin;
    this.#stdin = null;
    await w?.close().catch(() => {});
  }

  /** Sends `signal` to the process (ignored when it has ended). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#ended) return;
    try {
      this.child.kill(signal);
    } catch {
      // It ended between the check and the kill.
    }
  }

  /**
   * Waits until `condition` holds, re-checking whenever output arrives;
   * rejects after `timeoutMs`, or when the process ends first, with what it printed.
   */
  until<T>(what: string, condition: Condition<T>, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
    return this.#log.until(what, condition, timeoutMs);
  }

  /** Waits for the `nth` (1-based) JSON event named `event` that matches `where`. */
  waitForEvent(
    event: string,
    where: (e: E) => boolean = () => true,
    options: WaitForEventOptions = {},
  ): Promise<E> {
    return this.#log.waitForEvent(event, where, options);
  }

  /** When (Date.now()) the line of event `e` was read. */
  arrivedAt(e: E): number {
    return this.#log.arrivedAt(e);
  }

  /** Waits until stdout holds at least `n` complete lines, and returns them. */
  waitForLines(n: number, timeoutMs = DEFAULT_WAIT_MS): Promise<string[]> {
    return this.until(`${n} stdout line(s)`, () => {
      const lines = this.stdout.split("\n").slice(0, -1);
      return lines.length >= n ? lines : undefined;
    }, timeoutMs);
  }

  /** Waits for the process to end (bounded), then returns its code and output. */
  async wait(timeoutMs = DEFAULT_WAIT_MS): Promise<Exit> {
    await this.until("exit", () => this.#ended, timeoutMs).catch((err) => {
      if (!this.#ended) throw err;
    });
    const code = await this.exited;
    return { code, stdout: this.stdout, stderr: this.stderr };
  }

  /** The end of what it printed, for failure messages. */
  output(): string {
    return `--- stdout ---\n${this.stdout.slice(-2000)}\n--- stderr ---\n${
      this.stderr.slice(-4000)
    }`;
  }

  /** Kills the process if it still runs (stopped or not) and reaps it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.closeStdin();
    await this.exited;
  }

  /** Appends what `stream` delivers; parses its complete lines as JSON events when `parse`. */
  async #pump(stream: ReadableStream<Uint8Array>, parse: boolean, append: (text: string) => void) {
    let line = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      append(text);
      if (parse) {
        const lines = (line + text).split("\n");
        line = lines.pop()!;
        for (const l of lines) this.#parse(l);
      }
      this.#log.wake();
    }
    if (line) this.#parse(line);
  }

  #parse(line: string): void {
    if (!line.startsWith("{")) return;
    try {
      const e = JSON.parse(line);
      if (typeof e?.event === "string") this.#log.push(e);
    } catch {
      // Not an event: it stays in the raw output only.
    }
  }
}

/** A server started on a free port, with its address and URLs. */
export interface ServerProcess extends AsyncDisposable {
  /** The process. */
  proc: Program;
  /** `HOST:PORT` as the server reported it. */
  addr: string;
  /** The port. */
  port: number;
  /** `ws://ADDR/echo` (or wss://). */
  echoUrl: string;
  /** `http://ADDR` (or https://). */
  httpUrl: string;
}

/** Options of {@linkcode startServer}. */
export interface ServerOptions {
  /** Bind this port (default: a free one). */
  port?: number;
  /** Bind this address (default 127.0.0.1). */
  host?: string;
  /** Whether the URLs are wss:// and https:// (default: when `--tls-cert` is among the args). */
  tls?: boolean;
  /** Run inside this network namespace. */
  ns?: string;
  /** The bound on waiting for `listening` (ms). */
  timeoutMs?: number;
}

/**
 * Starts `server.ts` with `--log-format json` and `args`, on 127.0.0.1 and a
 * free port unless `options` say otherwise, and waits for its `listening` event.
 */
export async function startServer(
  args: string[] = [],
  options: ServerOptions = {},
): Promise<ServerProcess> {
  const proc = Program.start("server.ts", [
    "--addr",
    `${options.host ?? "127.0.0.1"}:${options.port ?? 0}`,
    "--log-format",
    "json",
    ...args,
  ], { ns: options.ns });
  try {
    const listening = await proc.waitForEvent("listening", undefined, {
      timeoutMs: options.timeoutMs,
    });
    const addr = String(listening.addr);
    const port = Number(addr.split(":").pop());
    const tls = options.tls ?? args.includes("--tls-cert");
    return {
      proc,
      addr,
      port,
      echoUrl: `${tls ? "wss" : "ws"}://${addr}/echo`,
      httpUrl: `${tls ? "https" : "http"}://${addr}`,
      [Symbol.asyncDispose]: () => proc[Symbol.asyncDispose](),
    };
  } catch (err) {
    await proc[Symbol.asyncDispose]();
    throw err;
  }
}

/** Runs `client.ts` with `args` to the end (bounded); `input` goes to its stdin. */
export async function runClient(
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<Exit & { events: LogEvent[] }> {
  await using proc = Program.start("client.ts", args, { stdin: options.input !== undefined });
  if (options.input !== undefined) {
    await proc.write(options.input);
    await proc.closeStdin();
  }
  const exit = await proc.wait(options.timeoutMs);
  return { ...exit, events: proc.events };
}

/** Whether `text` shows a stack trace or an uncaught error, which a user must never see. */
export function hasStackTrace(text: string): boolean {
  return /\bat (file|ext|node):|error: Uncaught|^\s+at .+:\d+:\d+\)?$/m.test(text);
}

/** The non-empty lines of stderr that are not JSON log events. */
export function plainLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("{"));
}
