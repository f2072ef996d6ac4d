/**
 * `--probe-idle`: find the idle timeout of the path to a server — the NAT,
 * firewall or proxy that forgets or ends connections on which nothing
 * moves — and recommend a heartbeat and a keepalive idle below it.
 *
 * One silent connection per checkpoint of a doubling schedule, from
 * `--probe-min` to `--probe-max` (e.g. 1s 2s 4s 8s 16s), all opened at
 * once with the heartbeat off and TCP keepalive as given. Connection k
 * stays idle until its checkpoint, then sends a ping and waits for the
 * pong:
 *
 * ```text
 *   conn 1s  ──open────ping✓                        alive after 1s idle
 *   conn 2s  ──open────────ping✓                    alive after 2s idle
 *   conn 4s  ──open──────────────ping·····✗         no pong: dead (timeout)
 *   conn 8s  ──open─────────────x                   ended while idle (eof, reset)
 * ```
 *
 * A connection that ends by itself while idle (a proxy's FIN, a
 * firewall's RST) is noticed as it happens, and the idle time it had is an
 * upper bound. A path that forgets a flow silently (a NAT dropping its
 * mapping) shows only when the ping gets no pong within
 * {@linkcode PROBE_PONG_WAIT_MS}. The bracket is the longest idle survived
 * and the shortest idle that killed.
 *
 * @module
 */

import { type Connection, dial, type DialOptions } from "../../mod.ts";
import { formatAddr } from "../common/addr.ts";
import { formatDuration } from "../common/duration.ts";
import { keepAliveLogFields } from "../common/keepalive.ts";
import { closeLogFields, type Logger } from "../common/log.ts";
import { closeSummary } from "../common/summary.ts";
import { describeDialError } from "./session.ts";
import { EXIT_FAILURE, EXIT_OK } from "../common/flags.ts";

/** Default first checkpoint: Go's keepalive idle, so anything shorter than the defaults show. */
export const DEFAULT_PROBE_MIN_MS = 15_000;
/** Default last checkpoint: past the common proxy and load balancer timeouts (60 s, 350 s). */
export const DEFAULT_PROBE_MAX_MS = 600_000;
/**
 * How long a check waits for its pong: several TCP retransmissions on a
 * live path (the first comes after 200 ms–1 s), far more than a round trip.
 */
export const PROBE_PONG_WAIT_MS = 5_000;

/** What `--probe-idle` needs. */
export interface ProbeOptions {
  /** The server's URL. */
  url: URL;
  /** How to dial: the keepalive as given; the heartbeat is turned off here. */
  dial: DialOptions;
  /** The first checkpoint (ms). */
  minMs: number;
  /** The last checkpoint (ms). */
  maxMs: number;
  /** How long a check waits for its pong (ms). */
  pongWaitMs?: number;
  /** Where events go. */
  logger: Logger;
  /** Writes one line to stdout. */
  print(line: string): void;
  /** Resolves when the user asks to stop (Ctrl-C). */
  interrupted: Promise<void>;
}

/** How one probe connection ended. */
export interface CheckOutcome {
  /** The connection's number (1 for the first checkpoint). */
  id: number;
  /** Its checkpoint (ms of idle before its ping). */
  checkpointMs: number;
  /**
   * `alive`: the ping was answered; `dead`: the path ended it (by itself
   * while idle, or as the ping showed); `skipped`: a shorter idle had
   * already killed another connection, so this one was not needed.
   */
  result: "alive" | "dead" | "skipped";
  /** The idle time it had when checked or when it ended (ms). */
  idleMs: number;
  /** The ping's round trip (alive). */
  rttMs?: number;
  /** How it died: a close cause (`eof`, `reset`…), or `timeout` when no pong came. */
  cause?: string;
  /** What noticed the death: the check's `ping`, or its end while `idle`. */
  noticed?: "ping" | "idle";
}

/** What the probe found. */
export interface ProbeResult {
  /** The longest idle survived below the upper bound (ms); 0 when none was. */
  lowerMs: number;
  /** The shortest idle that killed a connection (ms), or null when none did. */
  upperMs: number | null;
  /** How the path killed it (`eof`, `reset`, `timeout`…), or null. */
  cause: string | null;
}

/** The checkpoints: `min`, doubling while below `max`, then `max`. */
export function probeSchedule(minMs: number, maxMs: number): number[] {
  if (!(minMs > 0) || !(maxMs >= minMs)) {
    throw new RangeError("the probe needs 0 < min <= max");
  }
  const out: number[] = [];
  for (let t = minMs; t < maxMs; t *= 2) out.push(t);
  out.push(maxMs);
  return out;
}

/** The bracket from the outcomes: shortest idle that killed, longest idle survived below it. */
export function probeResult(outcomes: CheckOutcome[]): ProbeResult {
  const deaths = outcomes.filter((o) => o.result === "dead");
  const first = deaths.reduce<CheckOutcome | null>(
    (best, o) => best === null || o.idleMs < best.idleMs ? o : best,
    null,
  );
  const upper = first?.idleMs ?? null;
  const survived = outcomes.filter((o) =>
    o.result === "alive" && (upper === null || o.idleMs < upper)
  );
  return {
    lowerMs: Math.max(0, ...survived.map((o) => o.idleMs)),
    upperMs: upper,
    cause: first?.cause ?? null,
  };
}

/** Rounds ms to the nearest tenth of a second, in seconds. */
function tenths(ms: number): number {
  return Math.round(ms / 100) / 10;
}

/** The probe's answer: the final stdout line. */
export function describeResult(r: ProbeResult): string {
  const s = (ms: number) => formatDuration(tenths(ms) * 1000);
  return r.upperMs === null
    ? `no idle timeout up to ${s(r.lowerMs)}`
    : `idle timeout between ${s(r.lowerMs)} and ${s(r.upperMs)} (${r.cause})`;
}

/** What to set on this path: a ping interval and a keepalive idle, in whole seconds. */
export interface Recommendation {
  /** `--ping-interval`, or null when the path ended connections below the first checkpoint. */
  pingIntervalS: number | null;
  /** `--keepalive-idle`, or null likewise. */
  keepAliveIdleS: number | null;
  /** One or two sentences saying why. */
  text: string;
}

/**
 * Half the longest idle known to survive, in whole seconds (at least 1):
 * the margin covers a late timer and a timeout that counts from a packet
 * slightly older than ours. Keepalive helps only where the path tracks TCP
 * (a NAT, a firewall); a proxy's timer sees WebSocket frames only. When the
 * probe ran with TCP keepalive whose idle is shorter than what it found,
 * the keepalive probes may be what kept the flows, and the advice says so.
 *
 * @param r the bracket
 * @param keepAliveIdleMs the keepalive idle in force on the probe's sockets, or null when off
 */
export function recommend(r: ProbeResult, keepAliveIdleMs: number | null = null): Recommendation {
  const found = r.upperMs ?? r.lowerMs;
  const keptByProbes = keepAliveIdleMs !== null && keepAliveIdleMs < found
    ? `; TCP keepalive (idle ${
      formatDuration(keepAliveIdleMs)
    }) was on, and its probes refresh a NAT or firewall: --no-keepalive probes the path itself`
    : "";
  if (r.lowerMs < 2_000) {
    return {
      pingIntervalS: null,
      keepAliveIdleS: null,
      text: `the path ended connections idle for less than ${
        formatDuration(Math.max(r.lowerMs, 1_000))
      }: probe again with a smaller --probe-min`,
    };
  }
  const s = Math.max(1, Math.floor(r.lowerMs / 2 / 1000));
  const proxy = r.cause === "eof";
  const why = r.upperMs === null
    ? `idle connections survived ${formatDuration(tenths(r.lowerMs) * 1000)}`
    : proxy
    ? "the path ended idle connections with a FIN, as a proxy does: only WebSocket frames " +
      "reset a proxy's timer, so TCP keepalive will not help there"
    : "TCP keepalive probes refresh a NAT or firewall that tracks the flow; WebSocket pings " +
      "also cross proxies";
  return {
    pingIntervalS: s,
    keepAliveIdleS: proxy ? null : s,
    text: `recommended for this path: --ping-interval ${s}s` +
      (proxy ? "" : ` or --keepalive-idle ${s}s`) + ` (${why}${keptByProbes})`,
  };
}

/** Runs the probe to the end, prints its result, and returns the exit code. */
export async function runProbe(options: ProbeOptions): Promise<number> {
  const log = options.logger;
  const schedule = probeSchedule(options.minMs, options.maxMs);
  const pongWait = options.pongWaitMs ?? PROBE_PONG_WAIT_MS;
  const dialOptions: DialOptions = { ...options.dial, pingInterval: 0, pongTimeout: 0 };
  let stopped = false;
  options.interrupted.then(() => stopped = true);

  const dialed = await Promise.allSettled(schedule.map(() => dial(options.url, dialOptions)));
  const failed = dialed.find((d) => d.status === "rejected");
  if (failed || stopped) {
    for (const d of dialed) if (d.status === "fulfilled") d.value.terminate("the probe gave up");
    const message = failed
      ? describeDialError(options.url, (failed as PromiseRejectedResult).reason)
      : `interrupted while connecting to ${options.url.host}`;
    log.error("error", { message });
    return EXIT_FAILURE;
  }
  const conns = dialed.map((d) => (d as PromiseFulfilledResult<Connection>).value);
  log.info("probe-start", {
    url: options.url.href,
    connections: conns.length,
    checkpoints_s: schedule.map((ms) => ms / 1000),
    pong_wait_ms: pongWait,
  });

  // The shortest idle known to kill: connections waiting for a longer checkpoint are not needed.
  let shortestDeath = Infinity;
  const waiting = new Map<() => void, number>();
  const died = (idleMs: number) => {
    if (idleMs >= shortestDeath) return;
    shortestDeath = idleMs;
    for (const [skip, checkpointMs] of waiting) if (checkpointMs >= idleMs) skip();
  };
  let warned = false;

  const watch = async (ws: Connection, index: number): Promise<CheckOutcome> => {
    const id = index + 1;
    const checkpointMs = schedule[index];
    const openedAt = Date.now();
    let lastActivity = openedAt;
    log.info("open", {
      id,
      remote: formatAddr(ws.remoteAddr),
      protocol: ws.protocol,
      ...keepAliveLogFields(ws.keepalive),
      checkpoint_s: checkpointMs / 1000,
    });
    const activity = (what: string) => {
      const idle = Date.now() - lastActivity;
      lastActivity = Date.now();
      if (warned) return;
      warned = true;
      log.warn("probe-warning", {
        id,
        message: `the server sent a ${what} after ${formatDuration(idle)} of idle: its ` +
          "heartbeat keeps the path busy, so the idle it allows cannot be probed beyond that " +
          "(run the server with --ping-interval 0 to probe further)",
      });
    };
    ws.onping = () => activity("ping");
    ws.onmessage = () => activity("message");

    const outcome = await check(ws, id, checkpointMs, openedAt, () => lastActivity);
    if (outcome.result === "dead") died(outcome.idleMs);
    if (ws.isOpen) await ws.close(1000, "probe done");
    const info = await ws.closed;
    log.info("close", { id, ...closeLogFields(info, openedAt), ...closeSummary(ws) });
    return outcome;
  };

  const check = async (
    ws: Connection,
    id: number,
    checkpointMs: number,
    openedAt: number,
    last: () => number,
  ): Promise<CheckOutcome> => {
    const base = { id, checkpointMs };
    // 1. Stay idle until the checkpoint, unless the path ends the connection first.
    let timer: ReturnType<typeof setTimeout> | undefined;
    let cancel!: () => void;
    const waited = await Promise.race([
      new Promise<"due">((r) =>
        timer = setTimeout(() => r("due"), openedAt + checkpointMs - Date.now())
      ),
      ws.closed.then(() => "ended" as const),
      new Promise<"skip">((r) => {
        cancel = () => r("skip");
        waiting.set(cancel, checkpointMs);
      }),
      options.interrupted.then(() => "skip" as const),
    ]);
    clearTimeout(timer);
    waiting.delete(cancel);
    if (waited === "ended" || !ws.isOpen) {
      const info = await ws.closed;
      const o: CheckOutcome = {
        ...base,
        result: "dead",
        idleMs: Date.now() - last(),
        cause: info.cause,
        noticed: "idle",
      };
      logCheck(o);
      return o;
    }
    if (waited === "skip") {
      ws.terminate(
        stopped ? "interrupted" : "not needed: a shorter idle already ended a connection",
      );
      const o: CheckOutcome = { ...base, result: "skipped", idleMs: Date.now() - last() };
      logCheck(o);
      return o;
    }
    // 2. Ping, and wait for the pong (bounded), or for the end.
    const idleMs = Date.now() - last();
    const answer = await Promise.race([
      ws.ping().then((rtt) => ({ rtt }), () => null),
      ws.closed.then(() => null),
      new Promise<null>((r) => timer = setTimeout(() => r(null), pongWait)),
    ]);
    clearTimeout(timer);
    let o: CheckOutcome;
    if (answer) {
      o = { ...base, result: "alive", idleMs, rttMs: answer.rtt };
    } else if (ws.isOpen) {
      ws.terminate(`no pong within ${formatDuration(pongWait)}`);
      o = { ...base, result: "dead", idleMs, cause: "timeout", noticed: "ping" };
    } else {
      o = { ...base, result: "dead", idleMs, cause: (await ws.closed).cause, noticed: "ping" };
    }
    logCheck(o);
    return o;
  };

  const logCheck = (o: CheckOutcome) => {
    log.info("check", {
      id: o.id,
      checkpoint_s: o.checkpointMs / 1000,
      idle_s: Math.round(o.idleMs) / 1000,
      result: o.result,
      rtt_ms: o.rttMs,
      cause: o.cause,
      noticed: o.noticed,
    });
  };

  const outcomes = await Promise.all(conns.map(watch));
  const result = probeResult(outcomes);
  const ka = conns[0].keepalive;
  const advice = recommend(result, ka.keepAlive && ka.verified ? ka.idle : null);
  log.info("probe", {
    lower_s: tenths(result.lowerMs),
    upper_s: result.upperMs === null ? null : tenths(result.upperMs),
    cause: result.cause,
    recommended: {
      ping_interval_s: advice.pingIntervalS,
      keepalive_idle_s: advice.keepAliveIdleS,
    },
    complete: !stopped,
  });
  if (stopped) {
    log.error("error", { message: `interrupted; so far: ${describeResult(result)}` });
    return EXIT_FAILURE;
  }
  options.print(advice.text);
  options.print(describeResult(result));
  return EXIT_OK;
}
