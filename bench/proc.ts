/**
 * Child processes for the benchmark: spawn, read their output line by line,
 * wait for a JSON event, and stop them for sure (also when a run fails).
 *
 * @module
 */

import { CpuWindow } from "./procfs.ts";

/** How long a child may take to start listening. */
const START_TIMEOUT_MS = 30_000;
/** How long a child may take to stop before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** Output kept from each stream to explain a failure. */
const TAIL_CHARS = 4_000;

/** How a {@linkcode Child} is asked to stop. */
export type StopBy = "stdin" | "SIGTERM" | "SIGINT";

/** A spawned process whose stdout and stderr are read line by line, always. */
export class Child implements AsyncDisposable {
  /** The process id. */
  readonly pid: number;
  /** The last few KB of stderr, for error messages. */
  stderrTail = "";
  readonly #process: Deno.ChildProcess;
  readonly #stopBy: StopBy;
  readonly #label: string;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #listeners = new Set<(line: string) => void>();
  readonly #drained: Promise<unknown>;
  #status: Deno.CommandStatus | null = null;
  readonly #exited: Promise<Deno.CommandStatus>;

  /** Spawns `command args…` with piped stdio; `stopBy` says how {@linkcode stop} asks it to end. */
  constructor(
    label: string,
    command: string,
    args: string[],
    stopBy: StopBy,
    env?: Record<string, string>,
  ) {
    this.#label = label;
    this.#stopBy = stopBy;
    this.#process = new Deno.Command(command, {
      args,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#process.pid;
    this.#stdin = this.#process.stdin.getWriter();
    this.#exited = this.#process.status.then((s) => this.#status = s);
    this.#drained = Promise.all([
      readLines(this.#process.stdout, (line) => this.#emit(line)),
      readLines(this.#process.stderr, (line) => {
        this.stderrTail = (this.stderrTail + line + "\n").slice(-TAIL_CHARS);
        this.#emit(line);
      }),
    ]);
  }

  /**
   * Calls `handler` at once (synchronously, as the line is read) with every JSON
   * line whose `event` is `name`; returns a function that stops it.
   */
  onEvent(name: string, handler: (event: Record<string, unknown>) => void): () => void {
    const listener = (line: string) => {
      const event = parseJsonLine(line);
      if (event?.event === name) handler(event);
    };
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the first JSON line (stdout or stderr) whose `event` is `name`. */
  waitEvent(
    name: string,
    timeoutMs = START_TIMEOUT_MS,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = (line: string) => {
        const event = parseJsonLine(line);
        if (event?.event === name) {
          done();
          resolve(event);
        }
      };
      this.#listeners.add(listener);
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.#label} sent no "${name}" within ${timeoutMs} ms${this.#why()}`));
      }, timeoutMs);
      // Lines still buffered when the process exits are read before giving up.
      Promise.all([this.#exited, this.#drained]).then(([status]) => {
        if (!this.#listeners.has(listener)) return;
        done();
        reject(
          new Error(
            `${this.#label} exited with code ${status.code} before "${name}"${this.#why()}`,
          ),
        );
      });
    });
  }

  /** Asks the child to stop, kills it after `timeoutMs`, and resolves with its status. */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<Deno.CommandStatus> {
    if (this.#status === null) {
      try {
        if (this.#stopBy === "stdin") await this.#stdin.close();
        else this.#process.kill(this.#stopBy);
      } catch {
        // Already gone.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<null>((resolve) =>
        timer = setTimeout(() => resolve(null), timeoutMs)
      );
      const status = await Promise.race([this.#exited, late]);
      clearTimeout(timer);
      if (status === null) {
        try {
          this.#process.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
    try {
      await this.#stdin.close();
    } catch {
      // Already closed.
    }
    const status = await this.#exited;
    await this.#drained;
    return status;
  }

  /** Stops the child (see {@linkcode stop}). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #emit(line: string): void {
    for (const listener of [...this.#listeners]) listener(line);
  }

  #why(): string {
    const tail = this.stderrTail.trim().split("\n").slice(-5).join("\n");
    return tail ? `:\n${tail}` : "";
  }
}

/** Parses a line as a JSON object, or returns null. */
export function parseJsonLine(line: string): Record<string, unknown> | null {
  if (!line.startsWith("{")) return null;
  try {
    const v = JSON.parse(line);
    return v && typeof v === "object" ? v : null;
  } catch {
    return null;
  }
}

/** Time a marked run may take beyond its warm-up and window before it is given up. */
const RESULT_SLACK_MS = 60_000;

/**
 * Runs a program that marks its counted window (`{"event":"window","phase":
 * "start"|"end"}` the moment it takes its counters) and ends with one
 * `{"event":"result",…}` line. `measure` names whose CPU time is read at the
 * marks: a process tree's root pid, or "self" for the program itself; the CPU
 * seconds of the window are returned with the result.
 */
export async function runMarked(
  label: string,
  command: string,
  args: string[],
  windowMs: number,
  measure?: number | "self",
): Promise<{ result: Record<string, unknown>; cpuSeconds: number | null }> {
  await using child = new Child(label, command, args, "stdin");
  const window = measure === undefined
    ? null
    : new CpuWindow(measure === "self" ? child.pid : measure);
  child.onEvent("window", (e) => e.phase === "start" ? window?.start() : window?.end());
  const result = await child.waitEvent("result", windowMs + RESULT_SLACK_MS);
  const status = await child.stop();
  if (!status.success) {
    throw new Error(`${label} failed (exit ${status.code}): ${child.stderrTail.trim()}`);
  }
  return { result, cpuSeconds: window ? window.seconds() : null };
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) onLine(pending);
}
