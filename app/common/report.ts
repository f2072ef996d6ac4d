/**
 * What `--print-keepalive` prints: the resolved policy next to Go's and
 * the kernel's defaults, where each value came from, and the worst case to
 * notice a dead or hung peer, by TCP keepalive and by the heartbeat; as an
 * aligned table or as one JSON object.
 *
 * @module
 */

import {
  DEFAULT_KEEPALIVE_COUNT,
  DEFAULT_KEEPALIVE_IDLE_MS,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  type KernelKeepAlive,
  kernelKeepAliveDefaults,
  type ValueSource,
} from "../../lib/tcp/mod.ts";
import { type KeepAlivePolicy, worstCaseDetectionMs } from "../../mod.ts";
import { seconds } from "./keepalive.ts";
import type { LogFormat } from "./log.ts";

/** How the report names a value's source: "flag" for a value given on the command line. */
type ReportSource = "flag" | "default" | "os";

function reportSource(source: ValueSource): ReportSource {
  return source === "given" ? "flag" : source;
}

/** What the keepalive report is built from. */
export interface KeepAliveReportInput {
  /** The resolved policy. */
  policy: KeepAlivePolicy;
  /** The kernel's defaults, or null when they could not be read. */
  kernel: KernelKeepAlive | null;
  /** The WebSocket heartbeat in force (ms, 0 = off), when the report should weigh it in. */
  heartbeat?: { pingInterval: number; pongTimeout: number };
}

/** One value of the report: what is in force, where it came from, and the alternatives. */
export interface KeepAliveReportValue {
  /** The value in force (the kernel's when the source is "os"); null if unknown. */
  value: number | null;
  /** Where the value came from. */
  source: ReportSource;
  /** Go's default for this value. */
  go_default: number;
  /** The kernel's default, or null if unknown. */
  kernel: number | null;
}

/** The `--print-keepalive` data as one JSON-able object (seconds, as the flags speak). */
export interface KeepAliveReport {
  /** SO_KEEPALIVE on or off. */
  enabled: boolean;
  /** Idle seconds before the first probe. */
  idle_s: KeepAliveReportValue;
  /** Seconds between probes. */
  interval_s: KeepAliveReportValue;
  /** Unanswered probes before the connection is dropped. */
  count: KeepAliveReportValue;
  /** idle + interval × count, or null when off or unknown. */
  worst_case_detection_s: number | null;
  /** Where the kernel column comes from. */
  kernel_source: string;
  /** The heartbeat (seconds, 0 = off); present when the input gave it. */
  heartbeat?: { ping_interval_s: number; pong_timeout_s: number };
  /**
   * The worst case to notice a dead idle peer by whichever comes first, TCP
   * keepalive or the heartbeat's pong timeout; null when neither is on.
   * Present when the input gave the heartbeat.
   */
  worst_case_notice_s?: number | null;
  /** The worst case to notice a hung peer: only the pong timeout does; null when off. */
  worst_case_hung_peer_s?: number | null;
}

/** Where the kernel's defaults live on Linux. */
const KERNEL_SOURCE = "/proc/sys/net/ipv4/tcp_keepalive_{time,intvl,probes}";

/** Builds the `--print-keepalive` data: policy, sources, Go and kernel defaults, worst case. */
export function keepAliveReport(input: KeepAliveReportInput): KeepAliveReport {
  const { policy, kernel } = input;
  const row = (
    own: number | null,
    source: ValueSource,
    goDefault: number,
    kernelValue: number | null,
  ): KeepAliveReportValue => ({
    value: policy.enabled ? own ?? kernelValue : null,
    source: reportSource(source),
    go_default: goDefault,
    kernel: kernelValue,
  });
  const idle = row(
    seconds(policy.idle),
    policy.sources.idle,
    DEFAULT_KEEPALIVE_IDLE_MS / 1000,
    seconds(kernel?.idle ?? null),
  );
  const interval = row(
    seconds(policy.interval),
    policy.sources.interval,
    DEFAULT_KEEPALIVE_INTERVAL_MS / 1000,
    seconds(kernel?.interval ?? null),
  );
  const count = row(
    policy.count,
    policy.sources.count,
    DEFAULT_KEEPALIVE_COUNT,
    kernel?.count ?? null,
  );
  const known = idle.value !== null && interval.value !== null && count.value !== null;
  const keepalive = known
    ? worstCaseDetectionMs(idle.value! * 1000, interval.value! * 1000, count.value!) / 1000
    : null;
  const report: KeepAliveReport = {
    enabled: policy.enabled,
    idle_s: idle,
    interval_s: interval,
    count,
    worst_case_detection_s: keepalive,
    kernel_source: KERNEL_SOURCE,
  };
  const hb = input.heartbeat;
  if (hb) {
    const pong = hb.pongTimeout > 0 ? hb.pongTimeout / 1000 : null;
    report.heartbeat = {
      ping_interval_s: hb.pingInterval / 1000,
      pong_timeout_s: hb.pongTimeout / 1000,
    };
    report.worst_case_notice_s = keepalive === null
      ? pong
      : pong === null
      ? keepalive
      : Math.min(keepalive, pong);
    report.worst_case_hung_peer_s = pong;
  }
  return report;
}

/** Lays out rows as columns separated by two spaces. */
function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
}

/** The text `--print-keepalive` prints: an aligned table plus the worst case. */
export function formatKeepAliveReport(input: KeepAliveReportInput): string {
  const r = keepAliveReport(input);
  const secs = (v: number | null) => v === null ? "?" : `${v}s`;
  const num = (v: number | null) => v === null ? "?" : String(v);
  const inForce = (v: KeepAliveReportValue, fmt: typeof secs) =>
    !r.enabled ? "-" : v.value === null ? "kernel's" : fmt(v.value);
  const lines = [
    `TCP keepalive: ${r.enabled ? "on (SO_KEEPALIVE=1)" : "off (SO_KEEPALIVE=0)"}`,
    ...table([
      ["setting", "in force", "source", "Go default", "kernel default"],
      [
        "idle",
        inForce(r.idle_s, secs),
        r.idle_s.source,
        secs(r.idle_s.go_default),
        secs(r.idle_s.kernel),
      ],
      [
        "interval",
        inForce(r.interval_s, secs),
        r.interval_s.source,
        secs(r.interval_s.go_default),
        secs(r.interval_s.kernel),
      ],
      [
        "count",
        inForce(r.count, num),
        r.count.source,
        num(r.count.go_default),
        num(r.count.kernel),
      ],
    ]).map((l) => `  ${l}`),
  ];
  const byKeepAlive = !r.enabled
    ? "never (keepalive is off; only WebSocket pings notice)"
    : r.worst_case_detection_s === null
    ? "unknown (the kernel's values could not be read)"
    : `${r.worst_case_detection_s}s` +
      ` = idle ${r.idle_s.value}s + interval ${r.interval_s.value}s × count ${r.count.value}`;
  const pong = r.heartbeat && r.heartbeat.pong_timeout_s > 0 ? r.heartbeat.pong_timeout_s : null;
  if (pong === null) {
    lines.push(`worst case to notice a dead idle peer: ${byKeepAlive}`);
  } else if (r.worst_case_detection_s !== null && r.worst_case_detection_s <= pong) {
    lines.push(
      `worst case to notice a dead idle peer: ${byKeepAlive} (before the heartbeat's ${pong}s)`,
    );
  } else {
    const alone = r.enabled ? `TCP keepalive alone: ${byKeepAlive}` : "TCP keepalive is off";
    lines.push(
      `worst case to notice a dead idle peer: ${pong}s, by the heartbeat ` +
        `(nothing received for --pong-timeout ${pong}s); ${alone}`,
    );
  }
  if (r.heartbeat) {
    const ping = r.heartbeat.ping_interval_s;
    lines.push(
      pong === null
        ? "worst case to notice a hung peer (its kernel still answers TCP): never " +
          "(only the heartbeat notices: --ping-interval and --pong-timeout)"
        : `worst case to notice a hung peer (its kernel still answers TCP): ${pong}s, ` +
          `by the heartbeat (${ping > 0 ? `a ping every ${ping}s` : "no pings sent"})`,
    );
  }
  lines.push(
    "source: flag = given on the command line, default = Go's default, os = left to the kernel",
    `kernel defaults: ${input.kernel ? KERNEL_SOURCE : "could not be read"}`,
  );
  return lines.join("\n");
}

/** Prints what `--print-keepalive` shows (keepalive and heartbeat), in the chosen format, to stdout. */
export function printKeepAlive(
  settings: { keepAlive: KeepAlivePolicy; pingInterval: number; pongTimeout: number },
  logFormat: LogFormat,
  program: string,
): void {
  const input = {
    policy: settings.keepAlive,
    kernel: kernelKeepAliveDefaults(),
    heartbeat: { pingInterval: settings.pingInterval, pongTimeout: settings.pongTimeout },
  };
  const text = logFormat === "json"
    ? JSON.stringify({ program, ...keepAliveReport(input) }) + "\n"
    : formatKeepAliveReport(input) + "\n";
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}
