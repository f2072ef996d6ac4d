/**
 * The channel between the supervisor and each worker: the worker's stdin
 * and stdout, one JSON object per line (the worker's logs stay on stderr):
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
 * So `/metrics` answers for the whole server, whichever worker takes it.
 * This module is the worker's end; `supervisor.ts` is the other.
 *
 * @module
 */

import { readLines } from "../common/lines.ts";
import { Metrics } from "./metrics.ts";
import { mergeSnapshots, type MetricsSnapshot, snapshotOf } from "./snapshot.ts";

/** How long a worker waits for the others' counters before answering alone. */
export const COLLECT_TIMEOUT_MS = 1_000;

const encoder = new TextEncoder();

/** One message as a line of the channel. */
export function channelLine(message: Record<string, unknown>): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/** The JSON objects of a channel, one per line; other lines are skipped. */
export async function* jsonLines(
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
      Deno.stdout.writeSync(channelLine(message));
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
