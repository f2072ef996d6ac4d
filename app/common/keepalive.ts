/**
 * The keepalive as both programs present it: the shared flags (Go's
 * duration syntax, Go's rules), the `--print-keepalive` report, the
 * `keepalive` fields of the `open` log event, and the one warning line
 * when socket options cannot be set. The policy itself is the library's
 * (`lib/tcp/keepalive.ts`).
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { parseDuration } from "./duration.ts";
import {
  DEFAULT_KEEPALIVE_COUNT,
  DEFAULT_KEEPALIVE_IDLE_MS,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  type KernelKeepAlive,
  resolveKeepAliveNamed,
  resolveSingleKeepAlive,
  sockoptUnavailableReason,
  type ValueNames,
  type ValueSource,
} from "../../lib/tcp/mod.ts";
import {
  type KeepAliveConfig,
  type KeepAlivePolicy,
  type SocketOptions,
  worstCaseDetectionMs,
} from "../../mod.ts";

/** The keepalive flags shared by server and client, as parsed strings. */
export interface KeepAliveFlags {
  /** `--keepalive D`: Go's single KeepAlive value. */
  keepalive?: string;
  /** `--keepalive-idle D`. */
  idle?: string;
  /** `--keepalive-interval D`. */
  interval?: string;
  /** `--keepalive-count N`. */
  count?: string;
  /** `--no-keepalive`. */
  noKeepalive?: boolean;
}

/** Parses a duration flag, prefixing any error with the flag's name. */
function durationFlag(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${flag}: ${err.message}`);
    throw err;
  }
}

/** Runs a library resolver, turning its RangeError or TypeError into a usage error. */
function asUsage(resolve: () => KeepAlivePolicy): KeepAlivePolicy {
  try {
    return resolve();
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * Turns the shared flags into a policy. `--keepalive D` is Go's single value;
 * any of `--keepalive-idle/-interval/-count` make a `KeepAliveConfig` with
 * Enable=true; `--no-keepalive` turns it off; no flags give Go's defaults
 * (on, 15/15/9). Conflicting flags and values Linux refuses throw
 * {@linkcode UsageError}, naming the flag and its text.
 */
export function keepAliveFromFlags(f: KeepAliveFlags): KeepAlivePolicy {
  const perField = [
    f.idle !== undefined ? "--keepalive-idle" : null,
    f.interval !== undefined ? "--keepalive-interval" : null,
    f.count !== undefined ? "--keepalive-count" : null,
  ].filter((x): x is string => x !== null);

  if (f.noKeepalive) {
    const others = [...(f.keepalive !== undefined ? ["--keepalive"] : []), ...perField];
    if (others.length > 0) {
      throw new UsageError(
        `--no-keepalive cannot be combined with ${
          others.join(", ")
        }: it turns keepalive off, so there is nothing to tune`,
      );
    }
    return resolveSingleKeepAlive(-1);
  }

  if (f.keepalive !== undefined) {
    if (perField.length > 0) {
      throw new UsageError(
        `--keepalive cannot be combined with ${
          perField.join(", ")
        }: --keepalive is Go's single KeepAlive value (the idle time only), ` +
          `which Go ignores once a KeepAliveConfig is given; use --keepalive-idle instead`,
      );
    }
    const ms = durationFlag("--keepalive", f.keepalive);
    return asUsage(() => resolveSingleKeepAlive(ms, `--keepalive ${f.keepalive}`));
  }

  const cfg: KeepAliveConfig = { enable: true };
  const names: ValueNames = {};
  if (f.idle !== undefined) {
    cfg.idle = durationFlag("--keepalive-idle", f.idle);
    names.idle = `--keepalive-idle ${f.idle}`;
  }
  if (f.interval !== undefined) {
    cfg.interval = durationFlag("--keepalive-interval", f.interval);
    names.interval = `--keepalive-interval ${f.interval}`;
  }
  if (f.count !== undefined) {
    if (!/^[+-]?\d+$/.test(f.count.trim())) {
      throw new UsageError(
        `--keepalive-count: ${
          JSON.stringify(f.count)
        } is not a whole number (e.g. 9; 0 means Go's default, negative leaves the kernel's)`,
      );
    }
    cfg.count = Number(f.count.trim());
    names.count = `--keepalive-count ${f.count}`;
  }
  return asUsage(() => resolveKeepAliveNamed(cfg, names));
}

/** A policy as the library's serve() and dial() take it: Go's KeepAliveConfig, or false for off. */
export function keepAliveConfig(policy: KeepAlivePolicy): KeepAliveConfig | false {
  if (!policy.enabled) return false;
  // A negative value leaves the OS value, as the policy's null does.
  return { idle: policy.idle ?? -1, interval: policy.interval ?? -1, count: policy.count ?? -1 };
}

/** Whole seconds of a duration in ms, or null. */
function seconds(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms / 1000);
}

/** The `keepalive` and `user_timeout_ms` fields of an `open` log event. */
export function keepAliveLogFields(k: SocketOptions): Record<string, unknown> {
  return {
    keepalive: {
      enabled: k.keepAlive,
      idle_s: seconds(k.idle),
      interval_s: seconds(k.interval),
      count: k.count,
      verified: k.verified,
    },
    user_timeout_ms: k.userTimeout,
  };
}

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
  heartbeat?: { pingIntervalMs: number; pongTimeoutMs: number };
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
    const pong = hb.pongTimeoutMs > 0 ? hb.pongTimeoutMs / 1000 : null;
    report.heartbeat = {
      ping_interval_s: hb.pingIntervalMs / 1000,
      pong_timeout_s: hb.pongTimeoutMs / 1000,
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

/**
 * One line saying exactly what is in force when options could not be set,
 * e.g. `keepalive: --allow-ffi not granted; only SO_KEEPALIVE=on was set, so
 * the kernel defaults apply (idle 7200s, interval 75s, count 9), not the
 * requested 15s/15s/9`.
 */
export function fallbackWarning(
  policy: KeepAlivePolicy,
  kernel: KernelKeepAlive | null,
  reason: string = sockoptUnavailableReason() ?? "socket options unavailable",
): string {
  if (!policy.enabled) {
    return `keepalive: ${reason}; SO_KEEPALIVE=off was set, as requested`;
  }
  const defaults = kernel
    ? `idle ${seconds(kernel.idle)}s, interval ${seconds(kernel.interval)}s, count ${kernel.count}`
    : "values unknown: /proc/sys/net/ipv4 is not readable";
  const secs = (v: number | null) => v === null ? "kernel's" : `${seconds(v)}s`;
  const requested = `${secs(policy.idle)}/${secs(policy.interval)}/${policy.count ?? "kernel's"}`;
  const onlyOs = policy.idle === null && policy.interval === null && policy.count === null;
  return `keepalive: ${reason}; only SO_KEEPALIVE=on was set, so the kernel defaults apply (${defaults})` +
    (onlyOs ? ", as requested" : `, not the requested ${requested}`);
}
