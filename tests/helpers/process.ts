/**
 * Runs `server.ts` and `client.ts` as real subprocesses, with exactly the
 * permissions of the `deno task` entries, and reads them the way a user or a
 * log shipper would: JSON log events from stderr, lines from stdout.
 *
 * Every process is killed (SIGKILL) and reaped on dispose, so a failing test
 * leaves nothing running: `await using server = await startServer();`.
 *
 * @module
 */

/** The flags `deno task NAME` runs `NAME.ts` with, read from deno.json so tests use exactly those. */
export function taskFlags(name: "server" | "client"): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  return String(config.tasks[name]).split(/\s+/).filter((arg) => arg.startsWith("--"));
}

/** The permissions `deno task client` runs with. */
export const PERMISSIONS: string[] = taskFlags("client");

/** The repository root, where `server.ts` and `client.ts` live. */
export const ROOT = new URL("../../", import.meta.url);

/** Default bound on waiting for an event or an exit; generous for a loaded 2-core machine. */
export const DEFAULT_WAIT_MS = 20_000;

/** One JSON log event, as the programs write it with `--log-format json`. */
export type LogEvent = Record<string, unknown> & { event: string; level: string };

/** How a process ended. */
export interface Exit {
  /** The exit code (128 + signal number when killed by a signal). */
  code: number;
  /** Everything it wrote to stdout. */
  stdout: string;
  /** Everything it wrote to stderr. */
  stderr: string;
}

/** Options of {@linkcode Program.start}. */
export interface StartOptions {
  /** Give the process a stdin pipe (default: /dev/null). */
  stdin?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** A running `server.ts` or `client.ts`, with its output collected as it arrives. */
export class Program implements AsyncDisposable {
  /** The process. */
  readonly child: Deno.ChildProcess;
  /** Everything read from stdout so far. */
  stdout = "";
  /** Everything read from stderr so far. */
  stderr = "";
  /** The JSON events parsed from stderr so far. */
  readonly events: LogEvent[] = [];
  /** Resolves with the exit code once the process has ended and its pipes are drained. */
  readonly exited: Promise<number>;

  #changed: (() => void)[] = [];
  #stdin: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #ended = false;

  private constructor(child: Deno.ChildProcess, piped: boolean) {
    this.child = child;
    if (piped) this.#stdin = child.stdin.getWriter();
    const drained = Promise.all([
      this.#pump(child.stdout, (t) => this.stdout += t),
      this.#pump(child.stderr, (t) => {
        const before = this.stderr.length;
        this.stderr += t;
        this.#parse(before);
      }),
    ]);
    this.exited = Promise.all([child.status, drained]).then(([status]) => {
      this.#ended = true;
      this.#notify();
      return status.code;
    });
  }

  /** Starts `script` (relative to the repository root) with `args`. */
  static start(script: string, args: string[], options: StartOptions = {}): Program {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...taskFlags(script.replace(/\.ts$/, "") as "server" | "client"),
        new URL(script, ROOT).pathname,
        ...args,
      ],
      cwd: new URL(".", ROOT).pathname,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
    }).spawn();
    return new Program(child, options.stdin ?? false);
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
   * Waits until `ready()` holds, re-checking whenever output arrives; rejects
   * after `timeoutMs`, or when the process ends first, with what it printed.
   */
  async until<T>(
    what: string,
    ready: () => T | undefined | null | false,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const value = ready();
      if (value) return value;
      if (this.#ended) throw this.#failure(`ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.#failure(`no ${what} within ${timeoutMs}ms`);
      const changed = Promise.withResolvers<void>();
      this.#changed.push(changed.resolve);
      const timer = setTimeout(changed.resolve, left);
      await changed.promise;
      clearTimeout(timer);
    }
  }

  /** Waits for the `n`-th (1-based) JSON event named `event` that matches `where`. */
  waitForEvent(
    event: string,
    where: (e: LogEvent) => boolean = () => true,
    options: { nth?: number; timeoutMs?: number } = {},
  ): Promise<LogEvent> {
    const nth = options.nth ?? 1;
    return this.until(`event "${event}"${nth > 1 ? ` #${nth}` : ""}`, () => {
      const hits = this.events.filter((e) => e.event === event && where(e));
      return hits.length >= nth ? hits[nth - 1] : undefined;
    }, options.timeoutMs);
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
    await this.until("exit", () => this.#ended || undefined, timeoutMs).catch((err) => {
      if (!this.#ended) throw err;
    });
    const code = await this.exited;
    return { code, stdout: this.stdout, stderr: this.stderr };
  }

  /** Kills the process if it still runs and reaps it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeStdin();
    this.kill("SIGKILL");
    await this.exited;
  }

  #failure(what: string): Error {
    return new Error(
      `${what}\n--- stdout ---\n${this.stdout.slice(-2000)}\n--- stderr ---\n${
        this.stderr.slice(-4000)
      }`,
    );
  }

  #notify(): void {
    const waiting = this.#changed;
    this.#changed = [];
    for (const resolve of waiting) resolve();
  }

  async #pump(stream: ReadableStream<Uint8Array>, append: (text: string) => void) {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      append(text);
      this.#notify();
    }
  }

  #parse(from: number): void {
    // Parse complete lines only: find where the line holding `from` starts.
    const start = this.stderr.lastIndexOf("\n", from - 1) + 1;
    const end = this.stderr.lastIndexOf("\n");
    if (end < start) return;
    for (const line of this.stderr.slice(start, end).split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        this.events.push(JSON.parse(line));
      } catch {
        // Not a log event.
      }
    }
  }
}

/** A server started on a free loopback port, with its address and URLs. */
export interface ServerProcess extends AsyncDisposable {
  /** The process. */
  proc: Program;
  /** `127.0.0.1:PORT` as the server reported it. */
  addr: string;
  /** The port. */
  port: number;
  /** `ws://ADDR/echo` (or wss://). */
  echoUrl: string;
  /** `http://ADDR` (or https://). */
  httpUrl: string;
}

/**
 * Starts `server.ts` on 127.0.0.1 with `--log-format json` and `args`, and
 * waits for its `listening` event. Pass `port` to bind a given one.
 */
export async function startServer(
  args: string[] = [],
  options: { port?: number; tls?: boolean } = {},
): Promise<ServerProcess> {
  const proc = Program.start("server.ts", [
    "--addr",
    `127.0.0.1:${options.port ?? 0}`,
    "--log-format",
    "json",
    ...args,
  ]);
  try {
    const listening = await proc.waitForEvent("listening");
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
