/**
 * `--probe-idle` on the wire: dial one silent connection per checkpoint,
 * watch each until its checkpoint (or its end), ping it, and read the
 * outcomes with `probe.ts`.
 *
 * @module
 */

import { type Connection, dial, type DialOptions } from "../../mod.ts";
import { NormalClosure } from "../../lib/ws/mod.ts";
import { formatAddr } from "../common/addr.ts";
import { formatDuration } from "../common/duration.ts";
import { keepAliveLogFields } from "../common/keepalive.ts";
import { closeLogFields, type Logger } from "../common/log.ts";
import { EXIT_FAILURE, EXIT_OK } from "../common/run.ts";
import { closeSummary } from "../common/summary.ts";
import { describeDialError } from "./describe.ts";
import { proxyLogFields } from "./proxy_log.ts";
import {
  type CheckOutcome,
  describeResult,
  PROBE_PONG_WAIT_MS,
  probeResult,
  probeSchedule,
  recommend,
  tenths,
} from "./probe.ts";

/** What `--probe-idle` needs. */
export interface ProbeOptions {
  /** The server's URL. */
  url: URL;
  /** How to dial: the keepalive as given; the heartbeat is turned off here. */
  dial: DialOptions;
  /** The first checkpoint (ms). */
  min: number;
  /** The last checkpoint (ms). */
  max: number;
  /** How long a check waits for its pong (ms). */
  pongWait?: number;
  /** Where events go. */
  logger: Logger;
  /** Writes one line to stdout. */
  print(line: string): void;
  /** Resolves when the user asks to stop (Ctrl-C). */
  interrupted: Promise<void>;
}

/** Runs the probe to the end, prints its result, and returns the exit code. */
export async function runProbe(options: ProbeOptions): Promise<number> {
  const probe = new Probe(options);
  const conns = await probe.dialAll();
  if (conns === null) return EXIT_FAILURE;
  const outcomes = await Promise.all(conns.map((ws, i) => probe.watch(ws, i)));
  return probe.finish(outcomes, conns[0]);
}

/** One run of the probe: its schedule, and what the connections found so far. */
class Probe {
  readonly #options: ProbeOptions;
  readonly #log: Logger;
  readonly #schedule: number[];
  readonly #pongWait: number;
  #stopped = false;
  /** The shortest idle known to kill: connections waiting for a longer checkpoint are not needed. */
  #shortestDeath = Infinity;
  /** The connections still idle: how to skip each, and its checkpoint. */
  readonly #waiting = new Map<() => void, number>();
  #warned = false;

  constructor(options: ProbeOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#schedule = probeSchedule(options.min, options.max);
    this.#pongWait = options.pongWait ?? PROBE_PONG_WAIT_MS;
    options.interrupted.then(() => this.#stopped = true);
  }

  /** Opens every connection at once, with the heartbeat off; null (logged) when one fails. */
  async dialAll(): Promise<Connection[] | null> {
    const { url } = this.#options;
    const dialOptions: DialOptions = { ...this.#options.dial, pingInterval: 0, pongTimeout: 0 };
    const dialed = await Promise.allSettled(this.#schedule.map(() => dial(url, dialOptions)));
    const failed = dialed.find((d) => d.status === "rejected");
    if (failed || this.#stopped) {
      for (const d of dialed) if (d.status === "fulfilled") d.value.terminate("the probe gave up");
      const message = failed
        ? describeDialError(url, (failed as PromiseRejectedResult).reason)
        : `interrupted while connecting to ${url.host}`;
      this.#log.error("error", { message });
      return null;
    }
    const conns = dialed.map((d) => (d as PromiseFulfilledResult<Connection>).value);
    this.#log.info("probe-start", {
      url: url.href,
      connections: conns.length,
      checkpoints_s: this.#schedule.map((ms) => ms / 1000),
      pong_wait_ms: this.#pongWait,
    });
    return conns;
  }

  /** Watches connection `index` through its check, then closes it. */
  async watch(ws: Connection, index: number): Promise<CheckOutcome> {
    const id = index + 1;
    const checkpointMs = this.#schedule[index];
    const openedAt = Date.now();
    let lastActivity = openedAt;
    this.#log.info("open", {
      id,
      remote: formatAddr(ws.remoteAddr),
      ...proxyLogFields(this.#options.dial),
      protocol: ws.protocol,
      ...keepAliveLogFields(ws.keepalive),
      checkpoint_s: checkpointMs / 1000,
    });
    const activity = (what: string) => {
      const idle = Date.now() - lastActivity;
      lastActivity = Date.now();
      if (!this.#warned) this.#warnActivity(id, what, idle);
    };
    ws.onping = () => activity("ping");
    ws.onmessage = () => activity("message");

    const outcome = await this.#check(ws, id, checkpointMs, openedAt, () => lastActivity);
    this.#logCheck(outcome);
    if (outcome.result === "dead") this.#died(outcome.idleMs);
    if (ws.isOpen) await ws.close(NormalClosure, "probe done");
    const info = await ws.closed;
    this.#log.info("close", { id, ...closeLogFields(info, openedAt), ...closeSummary(ws) });
    return outcome;
  }

  #warnActivity(id: number, what: string, idle: number): void {
    this.#warned = true;
    this.#log.warn("probe-warning", {
      id,
      message: `the server sent a ${what} after ${formatDuration(idle)} of idle: its ` +
        "heartbeat keeps the path busy, so the idle it allows cannot be probed beyond that " +
        "(run the server with --ping-interval 0 to probe further)",
    });
  }

  /** A connection died after `idleMs`: the ones waiting for longer are not needed. */
  #died(idleMs: number): void {
    if (idleMs >= this.#shortestDeath) return;
    this.#shortestDeath = idleMs;
    for (const [skip, checkpointMs] of this.#waiting) if (checkpointMs >= idleMs) skip();
  }

  /** Idle until the checkpoint (unless the path ends the connection first), then ping. */
  async #check(
    ws: Connection,
    id: number,
    checkpointMs: number,
    openedAt: number,
    last: () => number,
  ): Promise<CheckOutcome> {
    const base = { id, checkpointMs };
    let timer: ReturnType<typeof setTimeout> | undefined;
    let cancel!: () => void;
    const waited = await Promise.race([
      new Promise<"due">((r) =>
        timer = setTimeout(() => r("due"), openedAt + checkpointMs - Date.now())
      ),
      ws.closed.then(() => "ended" as const),
      new Promise<"skip">((r) => {
        cancel = () => r("skip");
        this.#waiting.set(cancel, checkpointMs);
      }),
      this.#options.interrupted.then(() => "skip" as const),
    ]);
    clearTimeout(timer);
    this.#waiting.delete(cancel);
    if (waited === "ended" || !ws.isOpen) {
      const info = await ws.closed;
      return {
        ...base,
        result: "dead",
        idleMs: Date.now() - last(),
        cause: info.cause,
        noticed: "idle",
      };
    }
    if (waited === "skip") {
      ws.terminate(
        this.#stopped ? "interrupted" : "not needed: a shorter idle already ended a connection",
      );
      return { ...base, result: "skipped", idleMs: Date.now() - last() };
    }
    return await this.#ping(ws, base, Date.now() - last());
  }

  /** Pings, and waits for the pong (bounded), or for the end. */
  async #ping(
    ws: Connection,
    base: { id: number; checkpointMs: number },
    idleMs: number,
  ): Promise<CheckOutcome> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = await Promise.race([
      ws.ping().then((rtt) => ({ rtt }), () => null),
      ws.closed.then(() => null),
      new Promise<null>((r) => timer = setTimeout(() => r(null), this.#pongWait)),
    ]);
    clearTimeout(timer);
    if (answer) return { ...base, result: "alive", idleMs, rttMs: answer.rtt };
    if (ws.isOpen) {
      ws.terminate(`no pong within ${formatDuration(this.#pongWait)}`);
      return { ...base, result: "dead", idleMs, cause: "timeout", noticed: "ping" };
    }
    return { ...base, result: "dead", idleMs, cause: (await ws.closed).cause, noticed: "ping" };
  }

  #logCheck(o: CheckOutcome): void {
    this.#log.info("check", {
      id: o.id,
      checkpoint_s: o.checkpointMs / 1000,
      idle_s: Math.round(o.idleMs) / 1000,
      result: o.result,
      rtt_ms: o.rttMs,
      cause: o.cause,
      noticed: o.noticed,
    });
  }

  /** Logs and prints what the outcomes say; the exit code. */
  finish(outcomes: CheckOutcome[], first: Connection): number {
    const result = probeResult(outcomes);
    const ka = first.keepalive;
    const advice = recommend(result, ka.keepAlive && ka.verified ? ka.idle : null);
    this.#log.info("probe", {
      lower_s: tenths(result.lowerMs),
      upper_s: result.upperMs === null ? null : tenths(result.upperMs),
      cause: result.cause,
      recommended: {
        ping_interval_s: advice.pingIntervalS,
        keepalive_idle_s: advice.keepAliveIdleS,
      },
      complete: !this.#stopped,
    });
    if (this.#stopped) {
      this.#log.error("error", { message: `interrupted; so far: ${describeResult(result)}` });
      return EXIT_FAILURE;
    }
    this.#options.print(advice.text);
    this.#options.print(describeResult(result));
    return EXIT_OK;
  }
}
