/**
 * How the client writes each message it receives, so that the output says
 * exactly what came and a server cannot drive the terminal.
 *
 * | `--output`     | on a terminal                                   | on a pipe or file                                  |
 * | -------------- | ----------------------------------------------- | -------------------------------------------------- |
 * | text (default) | `< text`, control characters shown as escapes;   | one message per line: newline and CR as `\n`, `\r`; |
 * |                | binary as `[binary 5 B] aGVsbG8=`                | binary as base64                                   |
 * | json           | one object per message: `{"type":"text","data":…}`, binary data in base64                            |
 * | raw            | refused (the server's bytes would reach the terminal) | the message's bytes as they are, then `\n`     |
 *
 * @module
 */

import type { Message } from "../../mod.ts";
import { safeJson, UNSAFE_CHARS } from "../common/log.ts";

/** The values of `--output`. */
export type OutputMode = "text" | "json" | "raw";

/** The `--output` values, for flag validation and help. */
export const OUTPUT_MODES: readonly OutputMode[] = ["text", "json", "raw"];

/** How much of a binary message a terminal shows (bytes); the rest is counted. */
export const TERMINAL_BINARY_PREVIEW = 1024;

/** Escapes with a short name; other control characters get `\xNN` or `\u{N}`. */
const NAMED: Readonly<Record<string, string>> = {
  "\0": "\\0",
  "\x07": "\\a",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\v": "\\v",
  "\f": "\\f",
  "\r": "\\r",
  "\x1b": "\\e",
};

const UNSAFE = UNSAFE_CHARS;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "g");

/** The escape shown for one unsafe character. */
function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.codePointAt(0)!;
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
}

/** Whether `text` holds anything {@linkcode escapeForTerminal} would change. */
export function needsEscape(text: string): boolean {
  return UNSAFE.test(text);
}

/**
 * `text` with every control character, separator and bidi override written
 * as an escape (`\n`, `\r`, `\t`, `\e`, `\x01`, `\u{9b}`, `\u{202e}`…), each
 * passed through `mark` (e.g. to show it in reverse video). Everything else,
 * a backslash included, is left as it is.
 */
export function escapeForTerminal(
  text: string,
  mark: (escape: string) => string = (e) => e,
): string {
  return text.replace(UNSAFE_ALL, (c) => mark(escapeChar(c)));
}

/** The pipe rule: one message per line, with newline and carriage return written as `\n`, `\r`. */
export function pipeLine(text: string): string {
  return text.replace(/[\n\r]/g, (c) => c === "\n" ? "\\n" : "\\r");
}

/** Base64 of `bytes`. */
export function base64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** One message as `--output json` writes it: `{"type":"text"|"binary","data":…}` (binary data in base64). */
export function jsonLine(message: Message): string {
  return typeof message === "string"
    ? safeJson({ type: "text", data: message })
    : safeJson({ type: "binary", data: base64(message) });
}

/** How a terminal labels a binary message: `[binary 5 B]`. */
export function binaryLabel(bytes: Uint8Array): string {
  return `[binary ${bytes.length} B]`;
}

/** Colours of the terminal's text output (ANSI SGR). */
const GREEN = "\x1b[32m";
const INVERSE = "\x1b[7m";
const NOT_INVERSE = "\x1b[27m";
const DIM = "\x1b[2m";
const NOT_DIM = "\x1b[22m";
const RESET = "\x1b[0m";

/**
 * One received message as the terminal shows it (without the newline):
 * `< text` with escapes, or `< [binary N B] base64` (the first
 * {@linkcode TERMINAL_BINARY_PREVIEW} bytes). With colour the line is green
 * and the escapes are in reverse video, so `\n` that came as two characters
 * and a newline that was escaped look different.
 */
export function terminalLine(message: Message, colour: boolean): string {
  let body: string;
  if (typeof message === "string") {
    body = escapeForTerminal(message, colour ? (e) => INVERSE + e + NOT_INVERSE : undefined);
  } else {
    const shown = message.subarray(0, TERMINAL_BINARY_PREVIEW);
    const rest = message.length - shown.length;
    const label = binaryLabel(message);
    body = `${colour ? DIM + label + NOT_DIM : label} ${base64(shown)}${
      rest > 0 ? `… (${rest} B more)` : ""
    }`;
  }
  return colour ? `${GREEN}< ${body}${RESET}` : `< ${body}`;
}

/** Formats received messages for one `--output` mode and one kind of stdout. */
export interface Output {
  /** The bytes to write for `message`, its line end included. */
  format(message: Message): Uint8Array;
  /** The line for a terminal (no newline), or null when stdout is not one. */
  line(message: Message): string | null;
}

const encoder = new TextEncoder();
const NEWLINE = Uint8Array.of(0x0a);

/** The formatter for `mode` when stdout `isTerminal` (`colour` applies on a terminal in text mode). */
export function createOutput(mode: OutputMode, isTerminal: boolean, colour: boolean): Output {
  const line = (message: Message): string => {
    if (mode === "json") return jsonLine(message);
    if (isTerminal) return terminalLine(message, colour);
    return typeof message === "string" ? pipeLine(message) : base64(message);
  };
  return {
    format(message) {
      if (mode === "raw") {
        const bytes = typeof message === "string" ? encoder.encode(message) : message;
        const out = new Uint8Array(bytes.length + 1);
        out.set(bytes);
        out.set(NEWLINE, bytes.length);
        return out;
      }
      return encoder.encode(line(message) + "\n");
    },
    line: (message) => isTerminal && mode !== "raw" ? line(message) : null,
  };
}
