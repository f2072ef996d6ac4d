/**
 * Turns the runs' samples into medians, ratios against each peer and the
 * issue 6 targets, and prints them as a table.
 *
 * @module
 */

import type { Scenario } from "./config.ts";

/** A contender: a server under test, or in the client scenario a client. */
export type Contender = "ours" | "deno" | "ws";

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
}

/** How a metric is read. */
export interface MetricSpec {
  /** The scenario it belongs to. */
  scenario: Scenario;
  /** Key in {@linkcode Sample.values}. */
  metric: string;
  /** Unit shown in the table. */
  unit: string;
  /** Whether higher or lower is better. */
  better: "higher" | "lower";
  /** Issue 6 targets for ours/peer. */
  targets: { peer: Contender; op: ">=" | "<="; ratio: number }[];
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
  {
    scenario: "large",
    metric: "mbytes_per_s",
    unit: "MB/s",
    better: "higher",
    targets: [{ peer: "deno", op: ">=", ratio: 0.8 }],
  },
  {
    scenario: "rtt",
    metric: "p50_us",
    unit: "µs",
    better: "lower",
    targets: [{ peer: "deno", op: "<=", ratio: 1.2 }],
  },
  { scenario: "rtt", metric: "p99_us", unit: "µs", better: "lower", targets: [] },
  {
    scenario: "idle",
    metric: "rss_per_conn_kib",
    unit: "KiB/conn",
    better: "lower",
    targets: [{ peer: "deno", op: "<=", ratio: 1.0 }],
  },
  { scenario: "idle", metric: "accept_per_s", unit: "conn/s", better: "higher", targets: [] },
  { scenario: "client", metric: "msgs_per_s", unit: "msg/s", better: "higher", targets: [] },
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
    for (const peer of ["deno", "ws"] as const) {
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
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function ratioText(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? "-" : `${r.toFixed(2)}×`;
}

/** Renders the rows as an aligned plain-text table. */
export function formatTable(rows: Row[]): string {
  const head = [
    "scenario",
    "metric",
    "unit",
    "ours",
    "deno",
    "ws",
    "ours/deno",
    "ours/ws",
    "target (ours/peer)",
  ];
  const body = rows.map((r) => [
    r.scenario,
    r.metric,
    `${r.unit} (${r.better === "higher" ? "↑" : "↓"})`,
    figure(r.median.ours),
    figure(r.median.deno),
    figure(r.median.ws),
    ratioText(r.ratio.deno),
    ratioText(r.ratio.ws),
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
