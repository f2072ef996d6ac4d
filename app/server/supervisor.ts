/**
 * Several server processes on one port: a supervisor starts N workers that
 * listen with SO_REUSEPORT, so the kernel spreads connections across them.
 *
 * The supervisor and each worker talk over the worker's stdin and stdout, one
 * JSON object per line (the worker's logs stay on stderr):
 *
 * ```
 *   worker → supervisor  {"type":"listening","port":P}       once bound
 *   worker → supervisor  {"type":"collect","id":N}           /metrics asked
 *   supervisor → workers {"type":"snapshot","id":N}          send your counters
 *   worker → supervisor  {"type":"snapshot","id":N,"data":S}
 *   supervisor → worker  {"type":"collected","id":N,"data":[S…]}
 *   supervisor → workers {"type":"snapshot","id":0}          every second
 * ```
 *
 * So `/metrics` answers for the whole server, whichever worker takes it. The
 * supervisor keeps every worker's latest snapshot; when a worker dies, its
 * last counts are kept and added to every later answer, so totals never go
 * backwards across a restart.
 *
 * @module
 */

import { readLines } from "../common/lines.ts";
import type { Logger } from "../common/log.ts";
import { Metrics, WORKER_EXIT_CAUSE } from "./metrics.ts";

/** How long a worker waits for the others' counters before answering alone. */
export const COLLECT_TIMEOUT_MS = 1_000;
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

/** The counters of one worker, as sent over the channel. */
export interface MetricsSnapshot {
  /** Process id of the worker (0 for the sum of the workers that died). */
  pid: number;
  /** Plain counters, and the open gauge. */
  counts: Record<
    "open" | "accepted" | "messagesIn" | "messagesOut" | "bytesIn" | "bytesOut",
    number
  >;
  /** Closes by cause. */
  closes: Record<string, number>;
  /** Refusals by status. */
  refusals: Record<string, number>;
  /** Requests dropped without an answer, by reason. */
  drops: Record<string, number>;
  /** The connection-duration histogram. */
  durations: { counts: number[]; sum: number; count: number };
  /** The ping round-trip histogram. */
  pingRtts?: { counts: number[]; sum: number; count: number };
  /** The memory budget: limit and bytes held (gauges), evictions (a counter). */
  memory: { limit: number; used: number; evictions: number } | null;
  /** The keepalive in force, as the worker read it back. */
  keepalive: Metrics["keepalive"];
}

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

/** Takes a worker's counters for the channel. */
export function snapshotOf(metrics: Metrics, pid: number = Deno.pid): MetricsSnapshot {
  const traffic = metrics.totalTraffic();
  const budget = metrics.budget;
  return {
    pid,
    counts: {
      open: metrics.open,
      accepted: metrics.accepted,
      messagesIn: traffic.messagesIn,
      messagesOut: traffic.messagesOut,
      bytesIn: traffic.bytesIn,
      bytesOut: traffic.bytesOut,
    },
    closes: Object.fromEntries(metrics.closes),
    refusals: Object.fromEntries(metrics.refusals),
    drops: Object.fromEntries(metrics.drops),
    durations: {
      counts: [...metrics.durations.counts],
      sum: metrics.durations.sum,
      count: metrics.durations.count,
    },
    pingRtts: {
      counts: [...metrics.pingRtts.counts],
      sum: metrics.pingRtts.sum,
      count: metrics.pingRtts.count,
    },
    memory: budget && { limit: budget.limit, used: budget.used, evictions: budget.evictions },
    keepalive: metrics.keepalive,
  };
}

/** Adds up the workers' counters into one {@linkcode Metrics}. */
export function mergeSnapshots(snapshots: MetricsSnapshot[]): Metrics {
  const total = new Metrics();
  const add = <K>(into: Map<K, number>, key: K, n: number) =>
    into.set(key, (into.get(key) ?? 0) + n);
  for (const s of snapshots) {
    total.open += s.counts.open;
    total.accepted += s.counts.accepted;
    total.addTraffic(s.counts);
    for (const [cause, n] of Object.entries(s.closes)) add(total.closes, cause, n);
    for (const [status, n] of Object.entries(s.refusals)) add(total.refusals, Number(status), n);
    for (const [reason, n] of Object.entries(s.drops ?? {})) add(total.drops, reason, n);
    if (s.durations) total.durations.add(s.durations);
    if (s.pingRtts) total.pingRtts.add(s.pingRtts);
    if (s.memory) {
      const b = total.budget ?? { limit: 0, used: 0, evictions: 0 };
      total.budget = {
        limit: b.limit + s.memory.limit,
        used: b.used + s.memory.used,
        evictions: b.evictions + s.memory.evictions,
      };
    }
    total.keepalive ??= s.keepalive;
  }
  return total;
}

/**
 * What a dead worker leaves to the totals: its counters as last seen, with
 * nothing open any more. The connections it held ended with it, so they are
 * counted as closed with cause `worker-exit` (open = accepted − closed still
 * holds); its gauges (memory held, its share of the budget) drop to 0.
 */
export function retire(last: MetricsSnapshot): MetricsSnapshot {
  const closes = { ...last.closes };
  if (last.counts.open > 0) {
    closes[WORKER_EXIT_CAUSE] = (closes[WORKER_EXIT_CAUSE] ?? 0) + last.counts.open;
  }
  return {
    ...last,
    pid: 0,
    counts: { ...last.counts, open: 0 },
    closes,
    memory: last.memory && { limit: 0, used: 0, evictions: last.memory.evictions },
    keepalive: null,
  };
}

const encoder = new TextEncoder();

async function* jsonLines(
  stream: ReadableStream<Uint8Array>,
): AsyncIterable<Record<string, unknown>> {
  for await (const line of readLines(stream)) {
    try {
      yield JSON.parse(line);
    } catch {
      // Not ours: ignore stray output.
    }
  }
}

// ---------------------------------------------------------------------------
// Worker side

/** A worker's end of the channel to its supervisor (stdin/stdout). */
export class WorkerChannel {
  #metrics = new Metrics();
  #nextId = 1;
  #waiting = new Map<number, (data: MetricsSnapshot[]) => void>();
  #onSupervisorGone: () => void;

  /**
   * Starts listening to the supervisor. `onSupervisorGone` runs once when its
   * end of stdin closes (it exited or was killed): the worker should then stop,
   * or it would outlive the server it belongs to.
   */
  constructor(onSupervisorGone: () => void = () => {}) {
    this.#onSupervisorGone = onSupervisorGone;
    this.#listen();
  }

  /** Gives the channel this worker's counters and tells the supervisor the bound port. */
  attach(metrics: Metrics, port: number): void {
    this.#metrics = metrics;
    this.#send({ type: "listening", port });
  }

  #send(message: Record<string, unknown>): void {
    try {
      Deno.stdout.writeSync(encoder.encode(JSON.stringify(message) + "\n"));
    } catch {
      // The supervisor is gone; stdin's end tells the worker to stop.
    }
  }

  async #listen(): Promise<void> {
    try {
      for await (const m of jsonLines(Deno.stdin.readable)) {
        if (m.type === "snapshot") {
          this.#send({ type: "snapshot", id: m.id, data: snapshotOf(this.#metrics) });
        } else if (m.type === "collected") {
          const done = this.#waiting.get(m.id as number);
          this.#waiting.delete(m.id as number);
          done?.(m.data as MetricsSnapshot[]);
        }
      }
    } catch {
      // A read error on the pipe: the supervisor is as good as gone.
    }
    this.#onSupervisorGone();
  }

  /** The whole server's counters; this worker's alone if the others do not answer in time. */
  async collect(): Promise<Metrics> {
    const id = this.#nextId++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = new Promise<MetricsSnapshot[] | null>((resolve) => {
      this.#waiting.set(id, resolve);
      timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(null);
      }, COLLECT_TIMEOUT_MS);
    });
    this.#send({ type: "collect", id });
    const all = await answer;
    clearTimeout(timer);
    return all ? mergeSnapshots(all) : this.#metrics;
  }
}

// ---------------------------------------------------------------------------
// Supervisor side

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

/**
 * Starts `count` workers sharing one port, restarts any that die, answers
 * their metric collections, and on SIGINT/SIGTERM drains them all. Resolves
 * with the exit code.
 */
export async function superviseWorkers(options: SupervisorOptions): Promise<number> {
  const log = options.logger;
  const workers = new Map<number, Worker>();
  let port = options.port;
  const host = options.hostname.includes(":") ? `[${options.hostname}]` : options.hostname;
  let started = false;
  let stopping = false;
  let nextCollect = 1;
  /** The counts of the workers that died, as they were last seen (see {@linkcode retire}). */
  let retired: MetricsSnapshot | null = null;

  // Listen for signals before starting anyone, so an early SIGTERM still drains the workers.
  const stop = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve(signal));
  }

  const write = (w: Worker, message: Record<string, unknown>) => {
    w.stdin.write(encoder.encode(JSON.stringify(message) + "\n")).catch(() => {});
  };

  const start = (index: number): Promise<number> => {
    const { command, args } = selfCommand([
      ...options.args,
      // The last --addr wins: every worker binds the port the first one got.
      `--addr=${host}:${port}`,
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
    workers.set(index, w);
    const bound = Promise.withResolvers<number>();
    (async () => {
      try {
        for await (const m of jsonLines(child.stdout)) {
          if (m.type === "listening") {
            w.listening = true;
            bound.resolve(m.port as number);
          } else if (m.type === "snapshot") {
            w.last = m.data as MetricsSnapshot;
            w.snapshots.get(m.id as number)?.(w.last);
          } else if (m.type === "collect") collectFor(w, m.id as number);
        }
      } catch {
        // The pipe broke: the exit below is handled by child.status.
      }
      bound.reject(new Error(`worker ${index} exited before listening`));
    })();
    child.status.then(async (status) => {
      if (workers.get(index) === w) workers.delete(index);
      // Its counts stay in the totals; do this before the answers below, so no collection
      // in flight sees the worker neither alive nor retired.
      if (w.last) {
        retired = snapshotOf(mergeSnapshots([...retired ? [retired] : [], retire(w.last)]), 0);
      }
      // Whoever waits for this worker's counters stops waiting now.
      for (const answer of w.snapshots.values()) answer(null);
      w.snapshots.clear();
      // A worker that dies while the others start is a failed start, not a restart.
      if (stopping || !started) return;
      log.error("error", {
        message: `worker ${index} (pid ${child.pid}) ${exitText(status)}; restarting it`,
        worker: index,
        pid: child.pid,
      });
      await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
      if (!stopping) start(index).catch(() => {});
    });
    return bound.promise;
  };

  const collectFor = async (asker: Worker, id: number) => {
    const key = nextCollect++;
    const asked = [...workers.values()];
    const answers = asked.map((w) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      return new Promise<MetricsSnapshot | null>((resolve) => {
        w.snapshots.set(key, resolve);
        timer = setTimeout(() => resolve(null), COLLECT_TIMEOUT_MS / 2);
        write(w, { type: "snapshot", id: key });
      }).finally(() => {
        clearTimeout(timer);
        w.snapshots.delete(key);
      });
    });
    // A worker that died meanwhile is in `retired` already: count it once.
    const data = (await Promise.all(answers)).filter((s, i) =>
      s !== null && workers.get(asked[i].index) === asked[i]
    );
    if (retired) data.push(retired);
    write(asker, { type: "collected", id, data });
  };

  /** Sends SIGTERM to every worker and waits (bounded) for them; true when all drained. */
  const stopAll = async (): Promise<boolean> => {
    const running = [...workers.values()];
    for (const w of running) {
      try {
        w.child.kill("SIGTERM");
      } catch {
        // It exited meanwhile.
      }
    }
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
    for (const w of workers.values()) {
      try {
        w.child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }
    await Promise.all(running.map((w) => w.child.status));
    log.error("error", { message: `workers did not drain within ${DRAIN_TIMEOUT_MS}ms` });
    return false;
  };

  // Start one at a time: the first picks the port (when 0 was asked), the rest share it.
  let early: string | null = null;
  stop.promise.then((signal) => early ??= signal);
  try {
    for (let i = 0; i < options.count && early === null; i++) {
      const bound = await Promise.race([start(i), stop.promise.then(() => null)]);
      if (bound !== null && i === 0) port = bound;
    }
  } catch (err) {
    stopping = true;
    await stopAll();
    throw new Error(`cannot start workers: ${err instanceof Error ? err.message : err}`);
  }
  started = true;
  const poll = setInterval(() => {
    for (const w of workers.values()) if (w.listening) write(w, { type: "snapshot", id: 0 });
  }, SNAPSHOT_INTERVAL_MS);
  if (early === null) {
    log.info("workers", {
      count: options.count,
      port,
      pids: [...workers.values()].map((w) => w.child.pid),
    });
  }

  const signal = await stop.promise;
  stopping = true;
  clearInterval(poll);
  log.info("shutdown", { signal, workers: workers.size });
  const drained = await stopAll();
  log.info("stopped", { port });
  return drained ? 0 : 1;
}

/** Says how a worker ended: its exit code, or the signal that killed it. */
function exitText(status: Deno.CommandStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}
