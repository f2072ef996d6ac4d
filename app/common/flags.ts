/**
 * Command-line values for both programs: the flags they share, parsing
 * with clear errors, and one parser per kind of value (durations in Go's
 * syntax, whole numbers, byte sizes), each naming the flag in its
 * {@linkcode UsageError}.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { errorText } from "../../lib/errors.ts";
import { UsageError } from "./errors.ts";
import { parseDuration } from "./duration.ts";

/** Flags that both programs take, in `node:util` parseArgs form. */
export const COMMON_FLAGS = {
  "keepalive": { type: "string" },
  "keepalive-idle": { type: "string" },
  "keepalive-interval": { type: "string" },
  "keepalive-count": { type: "string" },
  "no-keepalive": { type: "boolean" },
  "print-keepalive": { type: "boolean" },
  "tcp-user-timeout": { type: "string" },
  "ping-interval": { type: "string" },
  "pong-timeout": { type: "string" },
  "stall-timeout": { type: "string" },
  "max-message-size": { type: "string" },
  "handshake-timeout": { type: "string" },
  "compression": { type: "boolean" },
  "log-format": { type: "string" },
  "no-pong": { type: "boolean" },
  "freeze-after": { type: "string" },
  "drop-after": { type: "string" },
  "drop-mode": { type: "string" },
  "help": { type: "boolean", short: "h" },
  "version": { type: "boolean", short: "V" },
} as const satisfies ParseArgsConfig["options"];

/** The values parseArgs returns for `flags`: a string or a boolean by each flag's type, `multiple` ones as arrays. */
export type FlagValues<F extends ParseArgsConfig["options"]> = {
  [K in keyof F]?: F[K] extends { type: "boolean" } ? boolean
    : F[K] extends { multiple: true } ? string[]
    : string;
};

/** The values of {@linkcode COMMON_FLAGS}, as parseArgs returns them. */
export type CommonValues = FlagValues<typeof COMMON_FLAGS>;

/** Parses `args` against `flags`; unknown flags and missing values become {@linkcode UsageError}. */
export function parseFlags<F extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  flags: F,
): { values: FlagValues<F>; positionals: string[] } {
  // Go's rules give negative values a meaning (`--keepalive-count -1` leaves the
  // OS value), but parseArgs reads "-1" as a flag: join such values to their flag.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : "";
    if (flags[name]?.type === "string" && /^-\d/.test(args[i + 1] ?? "")) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else {
      joined.push(args[i]);
    }
  }
  try {
    const { values, positionals } = parseArgs({
      args: joined,
      options: flags,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as FlagValues<F>, positionals };
  } catch (err) {
    throw new UsageError(errorText(err).replace(/\. To specify.*$/s, ""));
  }
}

/** What {@linkcode durationFlag} does with a negative value. */
export interface DurationFlagOptions {
  /**
   * `"reject"` (the default): a negative value is a usage error. `"allow"`:
   * it is returned, for Go's keepalive flags, where a negative value means
   * "leave the OS value" (or, for `--keepalive`, off).
   */
  negative?: "reject" | "allow";
}

/**
 * Parses a duration flag in Go's syntax (`15s`, `1m30s`, `500ms`) to ms;
 * `fallback` when absent. Fractions of a millisecond round away from zero,
 * so a duration given as nonzero never becomes 0 (which means "off" or
 * "the default") and a negative one stays negative. Throws a
 * {@linkcode UsageError} naming the flag.
 */
export function durationFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  options: DurationFlagOptions = {},
): number {
  if (value === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (err) {
    throw new UsageError(`${name}: ${errorText(err)}`);
  }
  if (ms < 0 && options.negative !== "allow") {
    throw new UsageError(`${name} must not be negative, got "${value}"`);
  }
  return ms < 0 ? -Math.ceil(-ms) : Math.ceil(ms);
}

/** Parses a whole-number flag within [min, max]; `fallback` when absent. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`${name} takes a whole number, got "${value}"`);
  }
  const n = Number(value);
  if (n < min && max === Number.MAX_SAFE_INTEGER) {
    throw new UsageError(`${name} must be at least ${min}, got ${n}`);
  }
  if (n < min || n > max) {
    throw new UsageError(`${name} must be between ${min} and ${max}, got ${n}`);
  }
  return n;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  kb: 1000,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  gib: 1024 ** 3,
};

/** Parses a byte size such as `65536`, `64KiB` or `16MiB`; `fallback` when absent. */
export function sizeFlag(
  name: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(
      `${name} takes a size in bytes such as 65536, 64KiB or 16MiB, got "${value}"`,
    );
  }
  const n = Number(m[1]) * unit;
  if (n < 1 || !Number.isSafeInteger(n)) {
    throw new UsageError(`${name} must be at least 1 byte, got "${value}"`);
  }
  return n;
}
