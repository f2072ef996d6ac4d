/**
 * A worker's counters as they cross the channel to the supervisor, and the
 * arithmetic on them: taking a snapshot, adding snapshots up into one
 * {@linkcode Metrics}, and what a dead worker leaves to the totals.
 *
 * @module
 */

import { Metrics, WORKER_EXIT_CAUSE } from "./metrics.ts";

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
