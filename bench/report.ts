/**
 * Turns the runs' samples into medians, ratios against each peer and the
 * issue 6 targets, and prints them as a table.
 *
 * @module
 */

import type { Scenario } from "./config.ts";
import { SERVER_NAMES, type ServerName } from "./servers.ts";

/**
 * A contender: a server under test, or in the client scenario a client (ours
 * = lib/client/dial.ts, deno = Deno's built-in WebSocket).
 */
export type Contender = ServerName;

/** The contenders in table order. */
export const CONTENDERS: readonly Contender[] = SERVER_NAMES;

/** One measurement of one metric. */
export interface Sample {
  /** Run number, from 1. */
  run: number;
  /** The scenario measured. */
  scenario: Scenario;
  /** Who was measured. */
  who: Contender;
  /** Metric name → value. */
  values: Record<string, number>;
  /** The measured server's process id (server scenarios). */
  pid?: number;
  /** What happened, in words, where a number does not say it (pipelined, c100k). */
  note?: string;
}

/** How a metric is read. */
export interface MetricSpec {
  /** The scenario it belongs to. */
  scenario: Scenario;
  /** Key in {@linkcode Sample.values}. */
  metric: string;
  /** Unit shown in the table. */
  unit: string;
  /** What the figure is, for the JSON and the smoke test. */
  kind?: "cpu";
  /** Whether higher or lower is better. */
  better: "higher" | "lower";
  /** Issue 6 targets for ours/peer. */
  targets: { peer: Contender; op: ">=" | "<="; ratio: number }[];
}

/** Server CPU time (utime + stime of its process tree, counted window only) per unit of work. */
function cpu(scenario: Scenario, per: "msg" | "conn", unit = `CPU µs/${per}`): MetricSpec {
  return {
    scenario,
    metric: `cpu_us_per_${per}`,
    unit,
    better: "lower",
    targets: [],
    kind: "cpu",
  };
}

/**
 * The json and deflate rows: throughput, CPU per message, and what the
 * server's compression achieved: payload bytes it echoed per byte it put on
 * the wire (TCP payload: frame headers count, the handshake does not).
 */
function deflateMetrics(scenario: "json" | "deflate"): MetricSpec[] {
  return [
    { scenario, metric: "msgs_per_s", unit: "msg/s", better: "higher", targets: [] },
    cpu(scenario, "msg"),
    {
      scenario,
      metric: "ratio_s2c",
      unit: "payload/wire, server→client",
      better: "higher",
      targets: [],
    },
  ];
}

/** Every metric in the table, with the targets issue 6 sets. */

export const METRICS: MetricSpec[] = [
  {
    scenario: "small",
    metric: "msgs_per_s",
    unit: "msg/s",
    better: "higher",
    targets: [{ peer: "deno", op: ">=", ratio: 1.0 }, { peer: "ws", op: ">=", ratio: 1.0 }],
  },
  cpu("small", "msg"),
  {
    scenario: "large",
    metric: "mbytes_per_s",
    unit: "MB/s",
    better: "higher",
    targets: [{ peer: "deno", op: ">=", ratio: 0.8 }],
  },
  cpu("large", "msg"),
  {
    scenario: "rtt",
    metric: "p50_us",
    unit: "µs",
    better: "lower",
    targets: [{ peer: "deno", op: "<=", ratio: 1.2 }],
  },
  { scenario: "rtt", metric: "p99_us", unit: "µs", better: "lower", targets: [] },
  cpu("rtt", "msg", "CPU µs/round trip"),
  {
    scenario: "idle",
    metric: "rss_per_conn_kib",
    unit: "KiB/conn",
    better: "lower",
    targets: [{ peer: "deno", op: "<=", ratio: 1.0 }],
  },
  { scenario: "idle", metric: "accept_per_s", unit: "conn/s", better: "higher", targets: [] },
  cpu("idle", "conn"),
  { scenario: "accept", metric: "accepts_per_s", unit: "conn/s", better: "higher", targets: [] },
  cpu("accept", "conn"),
  { scenario: "accept", metric: "errors", unit: "failed dials", better: "lower", targets: [] },
  {
    scenario: "storm",
    metric: "storm_s",
    unit: "s for all",
    better: "lower",
    targets: [{ peer: "deno", op: "<=", ratio: 1.0 }],
  },
  {
    scenario: "storm",
    metric: "cpu_us_per_conn",
    unit: "CPU µs/conn",
    better: "lower",
    targets: [{ peer: "deno", op: "<=", ratio: 1.0 }, { peer: "bun", op: "<=", ratio: 1.5 }],
    kind: "cpu",
  },
  { scenario: "storm", metric: "p50_ms", unit: "ms connect+echo", better: "lower", targets: [] },
  { scenario: "storm", metric: "p99_ms", unit: "ms connect+echo", better: "lower", targets: [] },
  {
    scenario: "storm",
    metric: "healthz_worst_ms",
    unit: "ms worst /healthz",
    better: "lower",
    targets: [],
  },
  { scenario: "storm", metric: "errors", unit: "failed clients", better: "lower", targets: [] },
  { scenario: "pipelined", metric: "mbytes_per_s", unit: "MB/s", better: "higher", targets: [] },
  cpu("pipelined", "msg"),
  { scenario: "pipelined", metric: "lost", unit: "echoes lost", better: "lower", targets: [] },
  { scenario: "pipelined", metric: "closes", unit: "conns ended", better: "lower", targets: [] },
  ...deflateMetrics("json"),
  ...deflateMetrics("deflate"),

  { scenario: "client", metric: "msgs_per_s", unit: "msg/s", better: "higher", targets: [] },
  cpu("client", "msg", "client CPU µs/msg"),
  { scenario: "c100k", metric: "open_s", unit: "s to open all", better: "lower", targets: [] },
  { scenario: "c100k", metric: "accept_per_s", unit: "conn/s", better: "higher", targets: [] },
  cpu("c100k", "conn"),
  { scenario: "c100k", metric: "rss_mib", unit: "MiB RSS, all", better: "lower", targets: [] },
  {
    scenario: "c100k",
    metric: "rss_per_conn_kib",
    unit: "KiB/conn",
    better: "lower",
    targets: [],
  },
  {
    scenario: "c100k",
    metric: "sockets",
    unit: "server sockets",
    better: "higher",
    targets: [],
  },
  {
    scenario: "c100k",
    metric: "keepalive_ok",
    unit: "with keepalive ≤ 15 s",
    better: "higher",
    targets: [],
  },
  {
    scenario: "c100k",
    metric: "closed_early",
    unit: "ended while held",
    better: "lower",
    targets: [],
  },
];

/** One line of the table: medians, ratios and targets of one metric. */
export interface Row {
  /** The scenario. */
  scenario: Scenario;
  /** The metric. */
  metric: string;
  /** Its unit. */
  unit: string;
  /** Whether higher or lower is better. */
  better: "higher" | "lower";
  /** What the figure is (see {@linkcode MetricSpec.kind}). */
  kind?: "cpu";
  /** Median per contender. */
  median: Partial<Record<Contender, number>>;
  /** Every run's value per contender, in run order. */
  samples: Partial<Record<Contender, number[]>>;
  /** ours / peer of the medians. */
  ratio: Partial<Record<Contender, number>>;
  /** Each target and whether this run met it. */
  targets: { peer: Contender; op: ">=" | "<="; ratio: number; met: boolean }[];
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Builds the table rows from all samples; metrics without samples are left out. */
export function summarise(samples: Sample[]): Row[] {
  const rows: Row[] = [];
  for (const spec of METRICS) {
    const per: Partial<Record<Contender, number[]>> = {};
    for (const s of samples) {
      if (s.scenario !== spec.scenario || !(spec.metric in s.values)) continue;
      (per[s.who] ??= []).push(s.values[spec.metric]);
    }
    if (Object.keys(per).length === 0) continue;
    const med: Partial<Record<Contender, number>> = {};
    for (const [who, values] of Object.entries(per)) med[who as Contender] = median(values);
    const ratio: Partial<Record<Contender, number>> = {};
    for (const peer of CONTENDERS.filter((c) => c !== "ours")) {
      if (med.ours !== undefined && med[peer] !== undefined) ratio[peer] = med.ours / med[peer]!;
    }
    const targets = spec.targets
      .filter((t) => ratio[t.peer] !== undefined)
      .map((t) => ({
        ...t,
        met: t.op === ">=" ? ratio[t.peer]! >= t.ratio : ratio[t.peer]! <= t.ratio,
      }));
    rows.push({
      scenario: spec.scenario,
      metric: spec.metric,
      unit: spec.unit,
      better: spec.better,
      ...(spec.kind ? { kind: spec.kind } : {}),
      median: med,
      samples: per,
      ratio,
      targets,
    });
  }
  return rows;
}

function figure(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "-";
  if (Math.abs(n) >= 1000 || Number.isInteger(n)) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function ratioText(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? "-" : `${r.toFixed(2)}×`;
}

/** Renders the rows as an aligned plain-text table, one column per contender that has a figure. */
export function formatTable(rows: Row[]): string {
  const who = CONTENDERS.filter((c) => rows.some((r) => r.median[c] !== undefined));
  const peers = who.filter((c) => c !== "ours");
  const head = [
    "scenario",
    "metric",
    "unit",
    ...who,
    ...(who.includes("ours") ? peers.map((p) => `ours/${p}`) : []),
    "target (ours/peer)",
  ];
  const body = rows.map((r) => [
    r.scenario,
    r.metric,
    `${r.unit} (${r.better === "higher" ? "↑" : "↓"})`,
    ...who.map((c) => figure(r.median[c])),
    ...(who.includes("ours") ? peers.map((p) => ratioText(r.ratio[p])) : []),
    r.targets.map((t) => `${t.peer} ${t.op} ${t.ratio.toFixed(1)}: ${t.met ? "met" : "NOT met"}`)
      .join("; "),
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((line) => [...line[i]].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) =>
      i < 3 || i === head.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i])
    )
      .join("  ").trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}
