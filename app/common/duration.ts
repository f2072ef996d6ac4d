/**
 * Durations written the way Go's `time.ParseDuration` reads them (`15s`,
 * `1m30s`, `1.5s`, `-1s`), held as milliseconds, and printed back the way
 * Go's `time.Duration.String` prints them.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Nanoseconds per unit, as in Go's `time` package. */
const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3, // µs, MICRO SIGN
  "\u03bcs": 1e3, // μs, GREEK SMALL LETTER MU
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const NS_PER_MS = 1e6;

/** One `<number><unit>` piece: digits with an optional fraction, then letters. */
const PIECE = /^(\d*)(?:\.(\d*))?([^\d.]+)/;

/**
 * Parses a Go duration (`300ms`, `-1.5h`, `2h45m`; units ns, us/µs, ms, s, m,
 * h) into milliseconds. `"0"` alone needs no unit. Throws {@linkcode UsageError}.
 */
export function parseDuration(text: string): number {
  const quoted = JSON.stringify(text);
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") {
    throw new UsageError(
      `invalid duration ${quoted}: expected a number with a unit, e.g. 15s`,
    );
  }
  if (/^\d+(\.\d*)?$|^\.\d+$/.test(rest)) {
    throw new UsageError(
      `invalid duration ${quoted}: missing unit (did you mean ${text}s?)`,
    );
  }
  let totalNs = 0;
  while (rest !== "") {
    const m = PIECE.exec(rest);
    if (m === null && /^\d*\.?\d*$/.test(rest)) {
      throw new UsageError(
        `invalid duration ${quoted}: missing unit after ${JSON.stringify(rest)}`,
      );
    }
    if (m === null || (m[1] === "" && (m[2] ?? "") === "")) {
      throw new UsageError(
        `invalid duration ${quoted}: expected a number at ${JSON.stringify(rest)}`,
      );
    }
    const [piece, whole, frac = "", unit] = m;
    const perUnit = UNIT_NS[unit];
    if (perUnit === undefined) {
      throw new UsageError(
        `invalid duration ${quoted}: unknown unit ${
          JSON.stringify(unit)
        } (use ns, us, ms, s, m or h)`,
      );
    }
    totalNs += Number(`${whole || "0"}.${frac || "0"}`) * perUnit;
    rest = rest.slice(piece.length);
  }
  if (!Number.isFinite(totalNs) || totalNs > Number.MAX_SAFE_INTEGER) {
    throw new UsageError(`invalid duration ${quoted}: too large`);
  }
  // Go counts whole nanoseconds; do the same before converting to ms.
  return (sign * Math.round(totalNs)) / NS_PER_MS || 0;
}

/** Formats `value` with up to `digits` decimals, dropping trailing zeros. */
function trimmed(value: number, digits: number): string {
  return value.toFixed(digits).replace(/\.?0+$/, "");
}

/**
 * Formats milliseconds like Go's `Duration.String`: `1m30s`, `15s`, `500ms`,
 * `1.5s`, `1h0m0s`, `0s`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const ns = Math.round(Math.abs(ms) * NS_PER_MS);
  const sign = ms < 0 && ns !== 0 ? "-" : "";
  if (ns === 0) return "0s";
  if (ns < 1e3) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${trimmed(ns / 1e3, 3)}\u00b5s`;
  if (ns < 1e9) return `${sign}${trimmed(ns / 1e6, 6)}ms`;
  const hours = Math.floor(ns / 3600e9);
  const minutes = Math.floor((ns % 3600e9) / 60e9);
  const seconds = trimmed((ns % 60e9) / 1e9, 9);
  let out = sign;
  if (hours > 0) out += `${hours}h`;
  if (hours > 0 || minutes > 0) out += `${minutes}m`;
  return `${out}${seconds}s`;
}
