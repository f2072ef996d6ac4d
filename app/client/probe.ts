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
 * This module holds the schedule and the reading of the outcomes, pure;
 * `probe_run.ts` holds the connections.
 *
 * @module
 */

import { formatDuration } from "../common/duration.ts";

/** Default first checkpoint: Go's keepalive idle, so anything shorter than the defaults show. */
export const DEFAULT_PROBE_MIN_MS = 15_000;
/** Default last checkpoint: past the common proxy and load balancer timeouts (60 s, 350 s). */
export const DEFAULT_PROBE_MAX_MS = 600_000;
/**
 * How long a check waits for its pong: several TCP retransmissions on a
 * live path (the first comes after 200 ms–1 s), far more than a round trip.
 */
export const PROBE_PONG_WAIT_MS = 5_000;

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

/** How late past a whole second a cut while idle may be seen and still be that second's (ms). */
const CUT_SLACK_MS = 250;

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
  // A connection the path ended while it sat idle (a FIN or RST at idle X)
  // was alive for every idle below X: its whole seconds below X count as
  // survived, so a timeout shorter than the first checkpoint still gets a
  // bracket one second wide instead of "between 0s and X". A cut is seen a
  // little after the path's whole second (its timer, then the FIN on its
  // way): within CUT_SLACK_MS of one, that second is the upper end.
  const cutWhileIdle = first?.noticed === "idle"
    ? Math.floor((first.idleMs - CUT_SLACK_MS) / 1000) * 1000
    : 0;
  return {
    lowerMs: Math.max(0, cutWhileIdle, ...survived.map((o) => o.idleMs)),
    upperMs: upper,
    cause: first?.cause ?? null,
  };
}

/** Rounds ms to the nearest tenth of a second, in seconds. */
export function tenths(ms: number): number {
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
