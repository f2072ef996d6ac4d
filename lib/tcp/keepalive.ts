/**
 * The TCP keepalive policy, with Go 1.23's semantics for `KeepAliveConfig`
 * and the single-value `Dialer.KeepAlive` / `ListenConfig.KeepAlive`. Pure:
 * no I/O. Durations are milliseconds; the kernel takes whole seconds, so
 * they round up, as Go's do. Applying a policy lives in `sockopt.ts`.
 *
 * @module
 */

// Go's defaults: defaultTCPKeepAliveIdle, defaultTCPKeepAliveInterval and
// defaultTCPKeepAliveCount in Go 1.23 src/net/tcpsock.go.

/** Go's `defaultTCPKeepAliveIdle`: 15 s idle before the first probe. */
export const DEFAULT_KEEPALIVE_IDLE_MS = 15_000;
/** Go's `defaultTCPKeepAliveInterval`: 15 s between unanswered probes. */
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
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

/** Where a resolved value came from: the caller, Go's default, or the kernel (left alone). */
export type ValueSource = "given" | "default" | "os";

/** A resolved keepalive policy; a null value means "leave the OS value". */
export interface KeepAlivePolicy {
  /** SO_KEEPALIVE on or off. */
  enabled: boolean;
  /** TCP_KEEPIDLE in ms (whole seconds), or null to leave the kernel's. */
  idle: number | null;
  /** TCP_KEEPINTVL in ms (whole seconds), or null to leave the kernel's. */
  interval: number | null;
  /** TCP_KEEPCNT, or null to leave the kernel's. */
  count: number | null;
  /** Where each value came from: the caller, Go's default, or the kernel (left alone). */
  sources: {
    idle: "given" | "default" | "os";
    interval: "given" | "default" | "os";
    count: "given" | "default" | "os";
  };
}

/** Go 1.23's `net.KeepAliveConfig`, with durations in milliseconds. */
export interface KeepAliveConfig {
  /** `Enable`: SO_KEEPALIVE on or off (default on). */
  enable?: boolean;
  /** `Idle`: 0 or absent → 15 s; negative → leave the OS value. */
  idle?: number;
  /** `Interval`: 0 or absent → 15 s; negative → leave the OS value. */
  interval?: number;
  /** `Count`: 0 or absent → 9; negative → leave the OS value. */
  count?: number;
}

/**
 * What the caller calls each value, for error messages (a CLI passes the
 * flag and its text, e.g. `--keepalive-idle 40000s`). By default the
 * messages name Go's fields.
 */
export interface ValueNames {
  /** Name of the idle value. */
  idle?: string;
  /** Name of the interval value. */
  interval?: string;
  /** Name of the count value. */
  count?: string;
}

/** The kernel's keepalive defaults (`net.ipv4.tcp_keepalive_{time,intvl,probes}`), ms and count. */
export interface KernelKeepAlive {
  /** `tcp_keepalive_time`, in ms. */
  idle: number;
  /** `tcp_keepalive_intvl`, in ms. */
  interval: number;
  /** `tcp_keepalive_probes`. */
  count: number;
}

/** A value as an error message quotes it: `15000ms` for a number, JSON otherwise. */
function shown(value: unknown, unit = "ms"): string {
  return typeof value === "number" && !Number.isNaN(value)
    ? `${value}${unit}`
    : JSON.stringify(value) ?? String(value);
}

/** Go's `roundDurationUp(d, time.Second)`, from and to milliseconds. */
function roundUpToSeconds(ms: number): number {
  const ns = Math.round(ms * 1e6);
  return Math.ceil(ns / 1e9);
}

/** Resolves one duration per Go: zero → default, negative → OS, else rounded up to seconds. */
function resolveDuration(
  ms: number | undefined,
  fallback: number,
  maxSeconds: number,
  name: string,
): [number | null, ValueSource] {
  if (ms === undefined || ms === 0) return [fallback, "default"];
  if (typeof ms !== "number" || Number.isNaN(ms)) {
    throw new TypeError(`${name} is not a duration in milliseconds`);
  }
  if (ms < 0) return [null, "os"];
  const s = roundUpToSeconds(ms);
  if (s < LINUX_MIN_KEEPALIVE_S || s > maxSeconds) {
    throw new RangeError(
      `${name} is out of range: Linux allows ${LINUX_MIN_KEEPALIVE_S}s to ${maxSeconds}s`,
    );
  }
  return [s * 1000, "given"];
}

/** Resolves the probe count per Go: zero → 9, negative → OS, else checked. */
function resolveCount(count: number | undefined, name: string): [number | null, ValueSource] {
  if (count === undefined || count === 0) return [DEFAULT_KEEPALIVE_COUNT, "default"];
  if (!Number.isInteger(count)) throw new TypeError(`${name} is not a whole number of probes`);
  if (count < 0) return [null, "os"];
  if (count < LINUX_MIN_KEEPCNT || count > LINUX_MAX_KEEPCNT) {
    throw new RangeError(
      `${name} is out of range: Linux allows ${LINUX_MIN_KEEPCNT} to ${LINUX_MAX_KEEPCNT}`,
    );
  }
  return [count, "given"];
}

/**
 * Resolves a Go 1.23 `KeepAliveConfig` as `TCPConn.SetKeepAliveConfig` does:
 * zero fields take Go's defaults, negative fields leave the OS value, and
 * durations round up to whole seconds. `false` turns keepalive off; `true`
 * or nothing gives Go's defaults; a policy resolved already is returned as
 * it is. Throws a RangeError past Linux's limits and a TypeError for a
 * value that is not a number.
 */
export function resolveKeepAlive(
  config: boolean | KeepAliveConfig | KeepAlivePolicy = true,
): KeepAlivePolicy {
  if (isPolicy(config)) return config;
  return resolveKeepAliveNamed(config, {});
}

/** Whether `value` is a policy {@linkcode resolveKeepAlive} made already. */
function isPolicy(value: boolean | KeepAliveConfig | KeepAlivePolicy): value is KeepAlivePolicy {
  return typeof value === "object" && "sources" in value && "enabled" in value;
}

/**
 * {@linkcode resolveKeepAlive} for a command line: errors name each value
 * by `names` (e.g. `--keepalive-idle 40000s`) instead of Go's fields.
 */
export function resolveKeepAliveNamed(
  config: boolean | KeepAliveConfig,
  names: ValueNames,
): KeepAlivePolicy {
  if (typeof config === "boolean") config = { enable: config };
  const [idle, idleSource] = resolveDuration(
    config.idle,
    DEFAULT_KEEPALIVE_IDLE_MS,
    LINUX_MAX_KEEPIDLE_S,
    names.idle ?? `KeepAliveConfig.Idle ${shown(config.idle)}`,
  );
  const [interval, intervalSource] = resolveDuration(
    config.interval,
    DEFAULT_KEEPALIVE_INTERVAL_MS,
    LINUX_MAX_KEEPINTVL_S,
    names.interval ?? `KeepAliveConfig.Interval ${shown(config.interval)}`,
  );
  const [count, countSource] = resolveCount(
    config.count,
    names.count ?? `KeepAliveConfig.Count ${shown(config.count, "")}`,
  );
  return {
    enabled: config.enable ?? true,
    idle,
    interval,
    count,
    sources: { idle: idleSource, interval: intervalSource, count: countSource },
  };
}

/**
 * Resolves Go's single-value `Dialer.KeepAlive` / `ListenConfig.KeepAlive`:
 * 0 → on with 15/15/9, negative → off, positive → the idle time only
 * (`30_000` gives 30 s / 15 s / 9). `name` names it in errors.
 */
export function resolveSingleKeepAlive(
  ms: number,
  name = `KeepAlive ${shown(ms)}`,
): KeepAlivePolicy {
  if (typeof ms !== "number" || Number.isNaN(ms)) {
    throw new TypeError(`${name} is not a duration in milliseconds`);
  }
  if (ms < 0) {
    return {
      enabled: false,
      idle: null,
      interval: null,
      count: null,
      sources: { idle: "os", interval: "os", count: "os" },
    };
  }
  const [idle, source] = resolveDuration(
    ms,
    DEFAULT_KEEPALIVE_IDLE_MS,
    LINUX_MAX_KEEPIDLE_S,
    name,
  );
  return {
    enabled: true,
    idle,
    interval: DEFAULT_KEEPALIVE_INTERVAL_MS,
    count: DEFAULT_KEEPALIVE_COUNT,
    sources: { idle: source, interval: "default", count: "default" },
  };
}

/**
 * Worst case for keepalive to notice a dead idle peer, in ms: the idle
 * time, then `count` unanswered probes `interval` apart.
 */
export function worstCaseDetectionMs(idle: number, interval: number, count: number): number {
  return idle + interval * count;
}
