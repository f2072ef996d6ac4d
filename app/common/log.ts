/**
 * Structured logs that people and programs can both read.
 *
 * Every line is one event: a name plus fields. `text` writes logfmt
 * (`time=… level=info event=open id=3 remote=127.0.0.1:5000 ka=15/15/9`),
 * `json` writes one JSON object per line with every field. Logs go to
 * stderr; stdout stays for messages.
 *
 * Text is for reading, so it is short: fields that are null, absent or ""
 * are left out, and a few groups are written compactly (see
 * {@linkcode formatText}). JSON keeps every field, nulls included.
 *
 * @module
 */

import type { CloseInfo } from "../../mod.ts";

/** The two output formats: logfmt-style text, or one JSON object per line. */
export type LogFormat = "text" | "json";

/** The log formats, for flag validation. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** How serious an event is. */
export type LogLevel = "info" | "warn" | "error";

/** Fields of one event; nested objects are flattened with dots in text. */
export type LogFields = Record<string, unknown>;

/** Writes events in one format to one sink. */
export interface Logger {
  /** The format this logger writes. */
  readonly format: LogFormat;
  /** Writes one event at `level`. */
  log(level: LogLevel, event: string, fields?: LogFields): void;
  /** Writes an `info` event. */
  info(event: string, fields?: LogFields): void;
  /** Writes a `warn` event. */
  warn(event: string, fields?: LogFields): void;
  /** Writes an `error` event. */
  error(event: string, fields?: LogFields): void;
}

const encoder = new TextEncoder();

/** Past this much waiting text it is written at once. */
const FLUSH_CHARS = 64 * 1024;

/**
 * Where text for stderr is encoded: one buffer, as a new one per write cost
 * more than the write. Every UTF-16 unit takes at most 3 bytes, so a flush
 * of {@linkcode FLUSH_CHARS} fits in one write.
 */
const stderrBuf = new Uint8Array(3 * FLUSH_CHARS);

/**
 * Where the piece of `text` from `at` that is written next ends: at most
 * `max` units, cut after a newline when the rest does not fit, so that a
 * line is one write (workers share one stderr, and another process's write
 * may land between two), and never inside a surrogate pair.
 */
export function pieceEnd(text: string, at: number, max: number): number {
  if (text.length - at <= max) return text.length;
  const newline = text.lastIndexOf("\n", at + max - 1);
  if (newline >= at) return newline + 1;
  const end = at + max;
  const last = text.charCodeAt(end - 1);
  return last >= 0xd800 && last <= 0xdbff ? end - 1 : end;
}

/** Writes a whole string to stderr synchronously, so no line is lost at exit. */
export function writeStderr(text: string): void {
  const max = Math.floor(stderrBuf.length / 3);
  for (let at = 0; at < text.length;) {
    const end = pieceEnd(text, at, max);
    const { written } = encoder.encodeInto(text.slice(at, end), stderrBuf);
    let off = 0;
    while (off < written) off += Deno.stderr.writeSync(stderrBuf.subarray(off, written));
    at = end;
  }
}

/** Lines written by {@linkcode writeStderrSoon} and not yet flushed. */
let pending: string[] = [];
let pendingChars = 0;
let flushTimer: number | undefined; // a timer id, as Deno.unrefTimer takes it
/** How long a line may wait to be written with others. */
const FLUSH_DELAY_MS = 5;

/**
 * Writes `text` to stderr within a few milliseconds, together with the
 * lines logged meanwhile: one write for many lines, where a server opening
 * and closing thousands of connections a second spent 7% of its CPU on one
 * synchronous write per line. {@linkcode flushStderr} writes what waits,
 * and does so before the program exits.
 */
export function writeStderrSoon(text: string): void {
  pending.push(text);
  pendingChars += text.length;
  if (pendingChars >= FLUSH_CHARS) flushStderr();
  else if (flushTimer === undefined) {
    flushTimer = setTimeout(flushStderr, FLUSH_DELAY_MS) as unknown as number;
    Deno.unrefTimer(flushTimer); // it must not keep the program alive; exit flushes
  }
}

/** Writes every line {@linkcode writeStderrSoon} still holds. */
export function flushStderr(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  if (pending.length === 0) return;
  const text = pending.join("");
  pending = [];
  pendingChars = 0;
  writeStderr(text);
}

globalThis.addEventListener("unload", flushStderr);

let isoMs = 0;
let isoText = "";

/** The time now in ISO 8601, made once a millisecond: a storm logs several lines in each. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/**
 * Creates a logger.
 *
 * @param format `text` or `json`
 * @param sink where each finished line goes (default: stderr)
 * @param now the clock, replaceable in tests (default: the system's)
 */
export function createLogger(
  format: LogFormat,
  sink: (line: string) => void = writeStderr,
  now?: () => Date,
): Logger {
  const log = (level: LogLevel, event: string, fields: LogFields = {}) => {
    const time = now ? now().toISOString() : isoNow();
    sink(
      format === "json"
        ? jsonLine(time, level, event, fields)
        : textLine(time, level, event, fields),
    );
  };
  return {
    format,
    log,
    info: (event, fields) => log("info", event, fields),
    warn: (event, fields) => log("warn", event, fields),
    error: (event, fields) => log("error", event, fields),
  };
}

/** The fields of a `close` log event for `info`, on a connection opened at `startedMs`. */
export function closeLogFields(info: CloseInfo, startedMs: number): LogFields {
  return {
    code: info.code,
    reason: info.reason,
    cause: info.cause,
    clean: info.clean,
    error: info.error,
    duration_ms: Date.now() - startedMs,
  };
}

/** One logfmt line: `time`, `level` and `event`, then `fields` (no field may take those names). */
function textLine(time: string, level: LogLevel, event: string, fields: LogFields): string {
  const rest = formatText(fields);
  return `time=${time} level=${level} event=${quote(event)}${rest === "" ? "" : " "}${rest}\n`;
}

/**
 * One JSON line: `time`, `level` and `event` first, then `fields` in their
 * order (no field may take those names), without copying them into a new
 * object: a server logs two lines a connection.
 */
function jsonLine(time: string, level: LogLevel, event: string, fields: LogFields): string {
  const head = `{"time":"${time}","level":"${level}","event":${JSON.stringify(event)}`;
  const rest = JSON.stringify(fields);
  return terminalSafe(rest.length > 2 ? `${head},${rest.slice(1)}\n` : `${head}}\n`);
}

/**
 * `JSON.stringify(value)` that is also safe on a terminal: DEL, the C1
 * controls (U+009B is a one-character CSI), the line separators and the
 * bidi overrides, which JSON leaves raw, become `\uXXXX` escapes.
 */
export function safeJson(value: unknown): string {
  return terminalSafe(JSON.stringify(value));
}

/** What JSON leaves raw that a terminal must not get raw (see {@linkcode safeJson}). */
const JSON_UNSAFE = /[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const JSON_UNSAFE_ALL = new RegExp(JSON_UNSAFE.source, "g");

/** JSON text with {@linkcode JSON_UNSAFE} characters escaped; most lines have none, and are returned as they are. */
function terminalSafe(json: string): string {
  if (!JSON_UNSAFE.test(json)) return json;
  return json.replace(
    JSON_UNSAFE_ALL,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Renders fields as logfmt: `key=value`, quoting values that need it (with
 * every control character escaped), nested objects flattened with dots.
 * Left out: null, undefined and "" values, and `user_timeout_ms=0`. Written
 * compactly:
 *
 * | fields                                             | text                                      |
 * | -------------------------------------------------- | ----------------------------------------- |
 * | `keepalive` {enabled, idle_s, interval_s, count, verified} | `ka=15/15/9` (idle/interval/count), `ka=off`, `ka=15/15/9(unverified)` |
 * | `pings` {sent, answered, rtt_min_ms, rtt_avg_ms, rtt_max_ms} | `pings=3/3 rtt_ms=1/1.33/2` (sent/answered, min/avg/max) |
 * | `traffic` {messages_in, bytes_in, messages_out, bytes_out} | `in=2/10B out=2/10B` (messages/bytes)     |
 */
export function formatText(fields: LogFields): string {
  let line = "";
  const add = (key: string, value: unknown) => {
    if (value === undefined || value === null || value === "") return;
    line += `${line === "" ? "" : " "}${key}=${quote(value)}`;
  };
  for (const key in fields) {
    const value = fields[key];
    const v = value as Record<string, unknown> | null;
    if (key === "keepalive" && v && typeof v === "object" && "enabled" in v) {
      add("ka", keepaliveText(v));
    } else if (key === "user_timeout_ms" && value === 0) {
      continue;
    } else if (key === "pings" && v && typeof v === "object" && "answered" in v) {
      add("pings", `${v.sent}/${v.answered}`);
      if (v.rtt_min_ms !== null && v.rtt_min_ms !== undefined) {
        add("rtt_ms", `${v.rtt_min_ms}/${v.rtt_avg_ms}/${v.rtt_max_ms}`);
      }
    } else if (key === "traffic" && v && typeof v === "object" && "messages_in" in v) {
      add("in", `${v.messages_in}/${v.bytes_in}B`);
      add("out", `${v.messages_out}/${v.bytes_out}B`);
    } else {
      flatten(key, value, add);
    }
  }
  return line;
}

/** `15/15/9`, `off`, or the values with `(unverified)` when they were not read back. */
function keepaliveText(k: Record<string, unknown>): string {
  if (!k.enabled) return "off";
  const value = (x: unknown) => x === null || x === undefined ? "?" : String(x);
  const values = `${value(k.idle_s)}/${value(k.interval_s)}/${value(k.count)}`;
  return k.verified ? values : `${values === "?/?/?" ? "on" : values}(unverified)`;
}

/** Hands `add` each leaf of `value`, nested objects' keys joined with dots. */
function flatten(prefix: string, value: unknown, add: (key: string, value: unknown) => void): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(`${prefix}.${k}`, v, add);
    return;
  }
  add(prefix, value);
}

/**
 * Characters a terminal must not be sent raw: C0 controls and DEL, C1
 * controls (U+0080–U+009F; U+009B is a one-character CSI), the line and
 * paragraph separators, and the bidi overrides and isolates, which reorder
 * what follows them on screen.
 */
// deno-lint-ignore no-control-regex
export const UNSAFE_CHARS = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** A value that needs quoting in logfmt: space, quote, `=`, backslash, or a character unsafe on a terminal. */
// deno-lint-ignore no-control-regex
const NEEDS_QUOTES = /[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

function quote(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const s = typeof value === "string" ? value : JSON.stringify(value);
  return NEEDS_QUOTES.test(s) ? safeJson(s) : s;
}
