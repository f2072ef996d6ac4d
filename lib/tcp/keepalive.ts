/**
 * The TCP keepalive policy, with Go 1.23's semantics for `KeepAliveConfig`
 * and the single-value `Dialer.KeepAlive` / `ListenConfig.KeepAlive`, the
 * command-line flags both programs share, and the `--print-keepalive` report.
 * Pure: no I/O. Applying a policy to a socket lives in `sockopt.ts`.
 *
 * @module
 */

import { formatDuration, parseDuration } from "../../app/duration.ts";
import { UsageError } from "../ws/errors.ts";

// Go's defaults: defaultTCPKeepAliveIdle, defaultTCPKeepAliveInterval and
// defaultTCPKeepAliveCount in Go 1.23 src/net/tcpsock.go.

/** Go's `defaultTCPKeepAliveIdle`: 15 s idle before the first probe. */
export const DEFAULT_KEEPALIVE_IDLE_S = 15;
/** Go's `defaultTCPKeepAliveInterval`: 15 s between unanswered probes. */
export const DEFAULT_KEEPALIVE_INTERVAL_S = 15;
/** Go's `defaultTCPKeepAliveCount`: 9 unanswered probes end the connection. */
export const DEFAULT_KEEPALIVE_COUNT = 9;

// Linux limits, from include/net/tcp.h (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
// MAX_TCP_KEEPCNT) and the `< 1` checks in do_tcp_setsockopt().

/** Smallest TCP_KEEPIDLE / TCP_KEEPINTVL Linux accepts, in seconds. */
export const LINUX_MIN_KEEPALIVE_S = 1;
/** Linux `MAX_TCP_KEEPIDLE`: largest TCP_KEEPIDLE, in seconds. */
export const LINUX_MAX_KEEPIDLE_S = 32767;
/** Linux `MAX_TCP_KEEPINTVL`: largest TCP_KEEPINTVL, in seconds. */
export const LINUX_MAX_KEEPINTVL_S = 32767;
/** Smallest TCP_KEEPCNT Linux accepts. */
export const LINUX_MIN_KEEPCNT = 1;
/** Linux `MAX_TCP_KEEPCNT`: largest TCP_KEEPCNT. */
export const LINUX_MAX_KEEPCNT = 127;

/** Where a resolved value came from: the user, Go's default, or the kernel (left alone). */
export type ValueSource = "flag" | "default" | "os";

/** A resolved keepalive policy; a null value means "leave the OS value". */
export interface KeepAlivePolicy {
  /** SO_KEEPALIVE on or off. */
  enabled: boolean;
  /** TCP_KEEPIDLE in whole seconds, or null to leave the kernel's. */
  idle_s: number | null;
  /** TCP_KEEPINTVL in whole seconds, or null to leave the kernel's. */
  interval_s: number | null;
  /** TCP_KEEPCNT, or null to leave the kernel's. */
  count: number | null;
  /** Where each value came from. */
  sources: { idle: ValueSource; interval: ValueSource; count: ValueSource };
}

/** Go 1.23's `net.KeepAliveConfig`, with durations in milliseconds. */
export interface KeepAliveConfig {
  /** `Enable`: SO_KEEPALIVE on or off. */
  enable: boolean;
  /** `Idle`: 0 or absent → 15 s; negative → leave the OS value. */
  idleMs?: number;
  /** `Interval`: 0 or absent → 15 s; negative → leave the OS value. */
  intervalMs?: number;
  /** `Count`: 0 or absent → 9; negative → leave the OS value. */
  count?: number;
}

/** What the user wrote for one value, so errors can quote it back. */
export interface FieldOrigin {
  /** The flag, e.g. `--keepalive-idle`. */
  flag: string;
  /** The text given to it, e.g. `40000s`. */
  text: string;
}

/** The user-given origin of each {@linkcode KeepAliveConfig} field, if any. */
export interface ConfigOrigins {
  /** Origin of `idleMs`. */
  idle?: FieldOrigin;
  /** Origin of `intervalMs`. */
  interval?: FieldOrigin;
  /** Origin of `count`. */
  count?: FieldOrigin;
}

/** Go's `roundDurationUp(d, time.Second)`, from milliseconds. */
function roundUpToSeconds(ms: number): number {
  const ns = Math.round(ms * 1e6);
  return Math.ceil(ns / 1e9);
}

/** Describes a value for an error message: the flag and its text, or the Go field. */
function describe(
  origin: FieldOrigin | undefined,
  goField: string,
  shown: string,
): string {
  return origin ? `${origin.flag} ${origin.text}` : `${goField} ${shown}`;
}

/** Resolves one duration field per Go: zero → default, negative → OS, else rounded up. */
function resolveSeconds(
  ms: number | undefined,
  fallback: number,
  max: number,
  origin: FieldOrigin | undefined,
  goField: string,
): [number | null, ValueSource] {
  if (ms === undefined || ms === 0) return [fallback, "default"];
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `${describe(origin, goField, "NaN")} is not a duration`,
    );
  }
  if (ms < 0) return [null, "os"];
  const s = roundUpToSeconds(ms);
  if (s < LINUX_MIN_KEEPALIVE_S || s > max) {
    throw new UsageError(
      `${
        describe(origin, goField, formatDuration(ms))
      } is out of range: Linux allows ${LINUX_MIN_KEEPALIVE_S}s to ${max}s`,
    );
  }
  return [s, "flag"];
}

/** Resolves the probe count per Go: zero → 9, negative → OS, else checked. */
function resolveCount(
  count: number | undefined,
  origin: FieldOrigin | undefined,
): [number | null, ValueSource] {
  if (count === undefined || count === 0) {
    return [DEFAULT_KEEPALIVE_COUNT, "default"];
  }
  const shown = describe(origin, "KeepAliveConfig.Count", String(count));
  if (!Number.isInteger(count)) {
    throw new UsageError(`${shown} is not a whole number of probes`);
  }
  if (count < 0) return [null, "os"];
  if (count < LINUX_MIN_KEEPCNT || count > LINUX_MAX_KEEPCNT) {
    throw new UsageError(
      `${shown} is out of range: Linux allows ${LINUX_MIN_KEEPCNT} to ${LINUX_MAX_KEEPCNT}`,
    );
  }
  return [count, "flag"];
}

/**
 * Resolves a Go 1.23 `KeepAliveConfig` as `TCPConn.SetKeepAliveConfig` does:
 * zero fields take Go's defaults, negative fields leave the OS value, and
 * durations round up to whole seconds. `explicit` names the flags the values
 * came from, for error messages. Throws {@linkcode UsageError} past Linux's limits.
 */
export function fromKeepAliveConfig(
  cfg: KeepAliveConfig,
  explicit: ConfigOrigins = {},
): KeepAlivePolicy {
  const [idle_s, idle] = resolveSeconds(
    cfg.idleMs,
    DEFAULT_KEEPALIVE_IDLE_S,
    LINUX_MAX_KEEPIDLE_S,
    explicit.idle,
    "KeepAliveConfig.Idle",
  );
  const [interval_s, interval] = resolveSeconds(
    cfg.intervalMs,
    DEFAULT_KEEPALIVE_INTERVAL_S,
    LINUX_MAX_KEEPINTVL_S,
    explicit.interval,
    "KeepAliveConfig.Interval",
  );
  const [count, countSource] = resolveCount(cfg.count, explicit.count);
  return {
    enabled: cfg.enable,
    idle_s,
    interval_s,
    count,
    sources: { idle, interval, count: countSource },
  };
}

/**
 * Resolves Go's single-value `Dialer.KeepAlive` / `ListenConfig.KeepAlive`:
 * 0 → on with 15/15/9, negative → off, positive → the idle time only
 * (`30s` gives 30/15/9). `origin` names the flag, for error messages.
 */
export function fromSingleValue(
  ms: number,
  origin?: FieldOrigin,
): KeepAlivePolicy {
  if (ms < 0) {
    return {
      enabled: false,
      idle_s: null,
      interval_s: null,
      count: null,
      sources: { idle: "os", interval: "os", count: "os" },
    };
  }
  const [idle_s, idle] = resolveSeconds(
    ms,
    DEFAULT_KEEPALIVE_IDLE_S,
    LINUX_MAX_KEEPIDLE_S,
    origin,
    "KeepAlive",
  );
  return {
    enabled: true,
    idle_s,
    interval_s: DEFAULT_KEEPALIVE_INTERVAL_S,
    count: DEFAULT_KEEPALIVE_COUNT,
    sources: { idle, interval: "default", count: "default" },
  };
}

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
    if (err instanceof UsageError) {
      throw new UsageError(`${flag}: ${err.message}`);
    }
    throw err;
  }
}

/**
 * Turns the shared flags into a policy. `--keepalive D` is Go's single value;
 * any of `--keepalive-idle/-interval/-count` make a `KeepAliveConfig` with
 * Enable=true; `--no-keepalive` turns it off; no flags give Go's defaults
 * (on, 15/15/9). Conflicting flags throw {@linkcode UsageError}.
 */
export function keepAliveFromFlags(f: KeepAliveFlags): KeepAlivePolicy {
  const perField = [
    f.idle !== undefined ? "--keepalive-idle" : null,
    f.interval !== undefined ? "--keepalive-interval" : null,
    f.count !== undefined ? "--keepalive-count" : null,
  ].filter((x): x is string => x !== null);

  if (f.noKeepalive) {
    const others = [
      ...(f.keepalive !== undefined ? ["--keepalive"] : []),
      ...perField,
    ];
    if (others.length > 0) {
      throw new UsageError(
        `--no-keepalive cannot be combined with ${
          others.join(", ")
        }: it turns keepalive off, so there is nothing to tune`,
      );
    }
    return fromSingleValue(-1);
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
    return fromSingleValue(ms, { flag: "--keepalive", text: f.keepalive });
  }

  const cfg: KeepAliveConfig = { enable: true };
  const origins: ConfigOrigins = {};
  if (f.idle !== undefined) {
    cfg.idleMs = durationFlag("--keepalive-idle", f.idle);
    origins.idle = { flag: "--keepalive-idle", text: f.idle };
  }
  if (f.interval !== undefined) {
    cfg.intervalMs = durationFlag("--keepalive-interval", f.interval);
    origins.interval = { flag: "--keepalive-interval", text: f.interval };
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
    origins.count = { flag: "--keepalive-count", text: f.count };
  }
  return fromKeepAliveConfig(cfg, origins);
}

/**
 * Worst-case seconds for keepalive to notice a dead idle peer: the idle time,
 * then `count` unanswered probes `interval` apart.
 */
export function worstCaseDetectionSeconds(
  idle: number,
  interval: number,
  count: number,
): number {
  return idle + interval * count;
}

/** The kernel's keepalive defaults (`net.ipv4.tcp_keepalive_{time,intvl,probes}`). */
export interface KernelKeepAlive {
  /** `tcp_keepalive_time`, seconds. */
  idle_s: number;
  /** `tcp_keepalive_intvl`, seconds. */
  interval_s: number;
  /** `tcp_keepalive_probes`. */
  count: number;
}

/** What the keepalive report is built from. */
export interface KeepAliveReportInput {
  /** The resolved policy. */
  policy: KeepAlivePolicy;
  /** The kernel's defaults, or null when they could not be read. */
  kernel: KernelKeepAlive | null;
}

/** One value of the report: what is in force, where it came from, and the alternatives. */
export interface KeepAliveReportValue {
  /** The value in force (the kernel's when the source is "os"); null if unknown. */
  value: number | null;
  /** Where the value came from. */
  source: ValueSource;
  /** Go's default for this value. */
  go_default: number;
  /** The kernel's default, or null if unknown. */
  kernel: number | null;
}

/** The `--print-keepalive` data as one JSON-able object. */
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
    source,
    go_default: goDefault,
    kernel: kernelValue,
  });
  const idle = row(
    policy.idle_s,
    policy.sources.idle,
    DEFAULT_KEEPALIVE_IDLE_S,
    kernel?.idle_s ?? null,
  );
  const interval = row(
    policy.interval_s,
    policy.sources.interval,
    DEFAULT_KEEPALIVE_INTERVAL_S,
    kernel?.interval_s ?? null,
  );
  const count = row(
    policy.count,
    policy.sources.count,
    DEFAULT_KEEPALIVE_COUNT,
    kernel?.count ?? null,
  );
  const known = idle.value !== null && interval.value !== null &&
    count.value !== null;
  return {
    enabled: policy.enabled,
    idle_s: idle,
    interval_s: interval,
    count,
    worst_case_detection_s: known
      ? worstCaseDetectionSeconds(idle.value!, interval.value!, count.value!)
      : null,
    kernel_source: KERNEL_SOURCE,
  };
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
  if (!r.enabled) {
    lines.push(
      "worst case to notice a dead idle peer: never (keepalive is off; only WebSocket pings notice)",
    );
  } else if (r.worst_case_detection_s === null) {
    lines.push(
      "worst case to notice a dead idle peer: unknown (the kernel's values could not be read)",
    );
  } else {
    lines.push(
      `worst case to notice a dead idle peer: ${r.worst_case_detection_s}s` +
        ` = idle ${r.idle_s.value}s + interval ${r.interval_s.value}s × count ${r.count.value}`,
    );
  }
  lines.push(
    "source: flag = given on the command line, default = Go's default, os = left to the kernel",
    `kernel defaults: ${input.kernel ? KERNEL_SOURCE : "could not be read"}`,
  );
  return lines.join("\n");
}
