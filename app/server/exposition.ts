/**
 * The Prometheus text exposition format (version 0.0.4), written family by
 * family: `# HELP` and `# TYPE` lines, then the samples, with labels and
 * values escaped and spelled as the format wants.
 *
 * @module
 */

/** A metric's type. */
export type MetricType = "counter" | "gauge" | "histogram";

/** One sample: its labels, its value, and a suffix of the name (`_bucket`, `_sum`, `_count`). */
export type Sample = [labels: Record<string, string | number>, value: number, suffix?: string];

/** What a histogram gives: counts per bucket (not cumulative; one more than `bounds`), sum, count. */
export interface HistogramView {
  /** The buckets' upper bounds, without +Inf. */
  readonly bounds: readonly number[];
  /** Observations per bucket. */
  readonly counts: readonly number[];
  /** The sum of all observations. */
  readonly sum: number;
  /** How many observations. */
  readonly count: number;
}

/** Lines of exposition text, every name with one prefix. */
export class Exposition {
  readonly #prefix: string;
  readonly #out: string[] = [];

  /** @param prefix what every metric name starts with */
  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** One family: HELP, TYPE, and its samples. */
  family(name: string, type: MetricType, help: string, samples: Sample[]): void {
    const full = this.#prefix + name;
    this.#out.push(`# HELP ${full} ${escapeHelp(help)}`, `# TYPE ${full} ${type}`);
    for (const [labels, value, suffix = ""] of samples) {
      this.#out.push(`${full}${suffix}${labelText(labels)} ${formatValue(value)}`);
    }
  }

  /** A family of one unlabelled sample; nothing when `value` is null (unknown). */
  one(name: string, type: "counter" | "gauge", help: string, value: number | null): void {
    if (value !== null) this.family(name, type, help, [[{}, value]]);
  }

  /** A histogram: cumulative buckets up to +Inf, then the sum and the count. */
  histogram(name: string, help: string, h: HistogramView): void {
    let cumulative = 0;
    this.family(name, "histogram", help, [
      ...h.bounds.map((le, i): Sample => [
        { le: formatValue(le) },
        cumulative += h.counts[i],
        "_bucket",
      ]),
      [{ le: "+Inf" }, h.count, "_bucket"],
      [{}, h.sum, "_sum"],
      [{}, h.count, "_count"],
    ]);
  }

  /** The text so far, ending with a newline. */
  text(): string {
    return this.#out.join("\n") + "\n";
  }
}

function labelText(labels: Record<string, string | number>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** A sample value as the text format spells it (`+Inf`, `-Inf`, `NaN`). */
function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
