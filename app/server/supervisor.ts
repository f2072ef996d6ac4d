/**
 * Several server processes on one port: a supervisor starts N workers that
 * listen with SO_REUSEPORT, so the kernel spreads connections across them,
 * restarts any that die, answers their metric collections (the channel is
 * described in `worker.ts`), and on a stop drains them all.
 *
 * The supervisor keeps every worker's latest snapshot; when a worker dies,
 * its last counts are kept and added to every later answer, so totals
 * never go backwards across a restart.
 *
 * @module
 */

import { errorText } from "../../lib/errors.ts";
import type { Logger } from "../common/log.ts";
import { listenForStop, type StopRequest } from "../common/signals.ts";
import { mergeSnapshots, type MetricsSnapshot, retire, snapshotOf } from "./snapshot.ts";
import { channelLine, COLLECT_TIMEOUT_MS, jsonLines } from "./worker.ts";

/** How long the supervisor waits for its workers to drain on SIGTERM. */
export const DRAIN_TIMEOUT_MS = 10_000;
/** Shortest time between restarts of a worker that died. */
export const RESTART_DELAY_MS = 1_000;
/**
 * How often the supervisor takes each worker's counters, besides every
 * `/metrics`: when a worker dies, what it counted up to its last snapshot
 * stays in the totals.
 */
export const SNAPSHOT_INTERVAL_MS = 1_000;

/** Whether this platform can share a port between processes (Deno's `reusePort` is Linux-only). */
export function reusePortSupported(): boolean {
  return Deno.build.os === "linux";
}

/** Resolves `--workers`: a count, or `auto` for one per core. */
export function workerCount(value: string | undefined): number | null {
  if (value === undefined) return 1;
  if (value === "auto") return navigator.hardwareConcurrency || 1;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 256) return null;
  return Number(value);
}

/** `args` without `flag` and its value (`--flag V` or `--flag=V`). */
export function withoutFlag(args: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) i++;
    else if (!args[i].startsWith(flag + "=")) out.push(args[i]);
  }
  return out;
}

/** The command that starts this same program as a worker, compiled or not. */
export function selfCommand(args: string[]): { command: string; args: string[] } {
  if (Deno.build.standalone) return { command: Deno.execPath(), args };
  return {
    command: Deno.execPath(),
    args: [
      "run",
      "--allow-net",
      "--allow-ffi",
      "--allow-read",
      "--unstable-net",
      Deno.mainModule,
      ...args,
    ],
  };
}

/** Options of {@linkcode superviseWorkers}. */
export interface SupervisorOptions {
  /** How many workers. */
  count: number;
  /** The server's own arguments, without `--workers`. */
  args: string[];
  /** The host to bind. */
  hostname: string;
  /** The port asked for; 0 means the first worker picks one and the rest share it. */
  port: number;
  /** Where the supervisor's events go. */
  logger: Logger;
}

/**
 * Starts `count` workers sharing one port, restarts any that die, answers
 * their metric collections, and on SIGINT/SIGTERM (or when the npm it was
 * started through is gone) drains them all. Resolves with the exit code.
 */
export async function superviseWorkers(options: SupervisorOptions): Promise<number> {
  // Listen before starting anyone, so an early SIGTERM still drains the workers.
  const stop = listenForStop({ launcher: true });
  return await new Supervisor(options).run(stop.requested);
}

interface Worker {
  index: number;
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** Pending snapshot requests; a worker that exits answers them all with null. */
  snapshots: Map<number, (s: MetricsSnapshot | null) => void>;
  /** Whether it has reported `listening` (so its signal handlers are installed). */
  listening: boolean;
  /** Its latest snapshot (any answer over the pipe is newer than the one before). */
  last: MetricsSnapshot | null;
}

/** The supervisor's state: its workers, and the counts of those that died. */
class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #log: Logger;
  readonly #workers = new Map<number, Worker>();
  readonly #host: string;
  #port: number;
  #started = false;
  #stopping = false;
  #nextCollect = 1;
  /** The counts of the workers that died, as they were last seen (see {@linkcode retire}). */
  #retired: MetricsSnapshot | null = null;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#port = options.port;
    this.#host = options.hostname.includes(":") ? `[${options.hostname}]` : options.hostname;
  }

  /** Starts the workers, serves until `stop`, drains; resolves with the exit code. */
  async run(stop: Promise<StopRequest>): Promise<number> {
    const early = await this.#startAll(stop);
    this.#started = true;
    const poll = setInterval(() => {
      for (const w of this.#workers.values()) {
        if (w.listening) this.#write(w, { type: "snapshot", id: 0 });
      }
    }, SNAPSHOT_INTERVAL_MS);
    if (early === null) {
      this.#log.info("workers", {
        count: this.#options.count,
        port: this.#port,
        pids: [...this.#workers.values()].map((w) => w.child.pid),
      });
    }
    const request = early ?? await stop;
    this.#stopping = true;
    clearInterval(poll);
    this.#log.info("shutdown", { ...request, workers: this.#workers.size });
    const drained = await this.#stopAll();
    this.#log.info("stopped", { port: this.#port });
    return drained ? 0 : 1;
  }

  /**
   * Starts one worker at a time: the first picks the port (when 0 was
   * asked), the rest share it. Resolves with the stop request that came
   * meanwhile, if one did.
   */
  async #startAll(stop: Promise<StopRequest>): Promise<StopRequest | null> {
    let early: StopRequest | null = null;
    stop.then((request) => early ??= request);
    try {
      for (let i = 0; i < this.#options.count && early === null; i++) {
        const bound = await Promise.race([this.#start(i), stop.then(() => null)]);
        if (bound !== null && i === 0) this.#port = bound;
      }
    } catch (err) {
      this.#stopping = true;
      await this.#stopAll();
      throw new Error(`cannot start workers: ${errorText(err)}`);
    }
    return early;
  }

  #write(w: Worker, message: Record<string, unknown>): void {
    w.stdin.write(channelLine(message)).catch(() => {});
  }

  /** Starts worker `index`; resolves with the port it bound. */
  #start(index: number): Promise<number> {
    const { command, args } = selfCommand([
      ...this.#options.args,
      // The last --addr wins: every worker binds the port the first one got.
      `--addr=${this.#host}:${this.#port}`,
      `--worker-index=${index}`,
    ]);
    const child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const w: Worker = {
      index,
      child,
      stdin: child.stdin.getWriter(),
      snapshots: new Map(),
      listening: false,
      last: null,
    };
    this.#workers.set(index, w);
    const bound = Promise.withResolvers<number>();
    this.#read(w, bound);
    child.status.then((status) => this.#exited(w, status));
    return bound.promise;
  }

  /** Reads a worker's channel until it closes. */
  async #read(w: Worker, bound: PromiseWithResolvers<number>): Promise<void> {
    try {
      for await (const m of jsonLines(w.child.stdout)) {
        if (m.type === "listening") {
          w.listening = true;
          bound.resolve(m.port as number);
        } else if (m.type === "snapshot") {
          w.last = m.data as MetricsSnapshot;
          w.snapshots.get(m.id as number)?.(w.last);
        } else if (m.type === "collect") this.#collectFor(w, m.id as number);
      }
    } catch {
      // The pipe broke: the exit is handled by child.status.
    }
    bound.reject(new Error(`worker ${w.index} exited before listening`));
  }

  /** A worker ended: keep its counts, answer for it, and restart it unless stopping. */
  async #exited(w: Worker, status: Deno.CommandStatus): Promise<void> {
    if (this.#workers.get(w.index) === w) this.#workers.delete(w.index);
    // Its counts stay in the totals; do this before the answers below, so no collection
    // in flight sees the worker neither alive nor retired.
    if (w.last) {
      const retired = this.#retired ? [this.#retired] : [];
      this.#retired = snapshotOf(mergeSnapshots([...retired, retire(w.last)]), 0);
    }
    // Whoever waits for this worker's counters stops waiting now.
    for (const answer of w.snapshots.values()) answer(null);
    w.snapshots.clear();
    // A worker that dies while the others start is a failed start, not a restart.
    if (this.#stopping || !this.#started) return;
    this.#log.error("error", {
      message: `worker ${w.index} (pid ${w.child.pid}) ${exitText(status)}; restarting it`,
      worker: w.index,
      pid: w.child.pid,
    });
    await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
    if (!this.#stopping) this.#start(w.index).catch(() => {});
  }

  /** Asks every worker for its counters and sends the lot to `asker`. */
  async #collectFor(asker: Worker, id: number): Promise<void> {
    const key = this.#nextCollect++;
    const asked = [...this.#workers.values()];
    const answers = asked.map((w) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      return new Promise<MetricsSnapshot | null>((resolve) => {
        w.snapshots.set(key, resolve);
        timer = setTimeout(() => resolve(null), COLLECT_TIMEOUT_MS / 2);
        this.#write(w, { type: "snapshot", id: key });
      }).finally(() => {
        clearTimeout(timer);
        w.snapshots.delete(key);
      });
    });
    // A worker that died meanwhile is in `retired` already: count it once.
    const data = (await Promise.all(answers)).filter((s, i) =>
      s !== null && this.#workers.get(asked[i].index) === asked[i]
    );
    if (this.#retired) data.push(this.#retired);
    this.#write(asker, { type: "collected", id, data });
  }

  /** Sends SIGTERM to every worker and waits (bounded) for them; true when all drained. */
  async #stopAll(): Promise<boolean> {
    const running = [...this.#workers.values()];
    for (const w of running) kill(w, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const statuses = await Promise.race([
      Promise.all(running.map((w) => w.child.status)),
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), DRAIN_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
    if (statuses) {
      // One that had not installed its handlers yet dies of the signal: nothing to drain there.
      return statuses.every((s, i) => s.success || !running[i].listening);
    }
    for (const w of this.#workers.values()) kill(w, "SIGKILL");
    await Promise.all(running.map((w) => w.child.status));
    this.#log.error("error", { message: `workers did not drain within ${DRAIN_TIMEOUT_MS}ms` });
    return false;
  }
}

/** Sends `signal` to a worker that may have exited meanwhile. */
function kill(w: Worker, signal: Deno.Signal): void {
  try {
    w.child.kill(signal);
  } catch {
    // It exited meanwhile.
  }
}

/** Says how a worker ended: its exit code, or the signal that killed it. */
function exitText(status: Deno.CommandStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}
