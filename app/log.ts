/**
 * Structured logs that people and programs can both read.
 *
 * Every line is one event: a name plus fields. `text` writes logfmt
 * (`time=… level=info event=open id=3 remote=127.0.0.1:5000 …`), `json` writes
 * one JSON object per line. Logs go to stderr; stdout stays for messages.
 *
 * @module
 */

import type { CloseInfo } from "../mod.ts";

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

/** Writes a whole string to stderr synchronously, so no line is lost at exit. */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * Creates a logger.
 *
 * @param format `text` or `json`
 * @param sink where each finished line goes (default: stderr)
 * @param now the clock, replaceable in tests
 */
export function createLogger(
  format: LogFormat,
  sink: (line: string) => void = writeStderr,
  now: () => Date = () => new Date(),
): Logger {
  const log = (level: LogLevel, event: string, fields: LogFields = {}) => {
    const time = now().toISOString();
    sink(
      format === "json"
        ? JSON.stringify({ time, level, event, ...fields }) + "\n"
        : formatText({ time, level, event, ...fields }) + "\n",
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

/** Renders fields as logfmt: `key=value`, quoting values that need it. */
export function formatText(fields: LogFields): string {
  const parts: string[] = [];
  flatten("", fields, parts);
  return parts.join(" ");
}

function flatten(prefix: string, value: unknown, out: string[]): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      flatten(prefix ? `${prefix}.${k}` : k, v, out);
    }
    return;
  }
  if (value === undefined) return;
  out.push(`${prefix}=${quote(value)}`);
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x20) return true;
  return false;
}

function quote(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value);
  return s === "" || /[\s"=\\]/.test(s) || hasControl(s) ? JSON.stringify(s) : s;
}
