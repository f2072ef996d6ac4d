/**
 * The keepalive as both programs present it: the shared flags (Go's
 * duration syntax, Go's rules), the `keepalive` fields of the `open` log
 * event, and the one warning line when socket options cannot be set. The
 * policy itself is the library's (`lib/tcp/keepalive.ts`); the
 * `--print-keepalive` report is in `report.ts`.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { durationFlag, type DurationFlagOptions } from "./flags.ts";
import type { Logger } from "./log.ts";
import {
  type KernelKeepAlive,
  kernelKeepAliveDefaults,
  resolveKeepAliveNamed,
  resolveSingleKeepAlive,
  sockoptUnavailableReason,
  type ValueNames,
} from "../../lib/tcp/mod.ts";
import type { KeepAliveConfig, KeepAlivePolicy, SocketOptions } from "../../mod.ts";

/** Go gives the keepalive flags' negative values a meaning: leave the OS value (or off). */
const ALLOW_NEGATIVE: DurationFlagOptions = { negative: "allow" };

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
    const ms = durationFlag("--keepalive", f.keepalive, 0, ALLOW_NEGATIVE);
    return asUsage(() => resolveSingleKeepAlive(ms, `--keepalive ${f.keepalive}`));
  }

  const cfg: KeepAliveConfig = { enable: true };
  const names: ValueNames = {};
  if (f.idle !== undefined) {
    cfg.idle = durationFlag("--keepalive-idle", f.idle, 0, ALLOW_NEGATIVE);
    names.idle = `--keepalive-idle ${f.idle}`;
  }
  if (f.interval !== undefined) {
    cfg.interval = durationFlag("--keepalive-interval", f.interval, 0, ALLOW_NEGATIVE);
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

/** Whole seconds of a duration in ms, or null. */
export function seconds(ms: number | null): number | null {
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

/**
 * Logs {@linkcode fallbackWarning} as a `keepalive` warning when socket
 * options cannot be set here (no `--allow-ffi`, an OS without them).
 */
export function warnIfUntunable(log: Logger, policy: KeepAlivePolicy): void {
  const unavailable = sockoptUnavailableReason();
  if (unavailable) {
    log.warn("keepalive", {
      message: fallbackWarning(policy, kernelKeepAliveDefaults(), unavailable),
    });
  }
}
