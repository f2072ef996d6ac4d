/**
 * The client's slash commands: a line that starts with `/` is a command, not
 * a message (on a terminal by default; on a pipe with `--slash`). `//` at
 * the start sends the rest with one `/`.
 *
 * @module
 */

import { isValidWireCode, NormalClosure } from "../../lib/ws/mod.ts";

/** The largest close reason, in UTF-8 bytes: 125 bytes of payload less the 2-byte code (RFC 6455 §5.5). */
export const MAX_CLOSE_REASON = 123;

/** The largest ping payload, in bytes (RFC 6455 §5.5). */
export const MAX_PING_PAYLOAD = 125;

/** What one line of input asks for. */
export type Command =
  | { type: "send"; text: string }
  | { type: "ping"; data: string }
  | { type: "close"; code: number; reason: string }
  | { type: "quit" }
  | { type: "help" }
  | { type: "error"; message: string };

/** The `/help` text. */
export const SLASH_HELP = `Commands (a line that starts with / is not sent; // sends one /):
  /ping [data]             send a ping (data: at most 125 bytes) and show the round trip
  /close [code [reason]]   close with code (default 1000) and reason, then exit
  /quit                    close with 1000 and exit (as Ctrl-D does)
  /help                    this list`;

/** Reads one input line: a message to send, or a command. */
export function parseLine(line: string): Command {
  if (!line.startsWith("/")) return { type: "send", text: line };
  if (line.startsWith("//")) return { type: "send", text: line.slice(1) };
  const match = /^\/(\S*)\s*(.*)$/s.exec(line)!;
  const [name, rest] = [match[1], match[2]];
  switch (name) {
    case "ping": {
      const bytes = new TextEncoder().encode(rest).length;
      if (bytes > MAX_PING_PAYLOAD) {
        return {
          type: "error",
          message: `/ping: data is at most ${MAX_PING_PAYLOAD} bytes, got ${bytes}`,
        };
      }
      return { type: "ping", data: rest };
    }
    case "close": {
      const m = /^(\S*)\s*(.*)$/s.exec(rest)!;
      if (m[1] === "") return { type: "close", code: NormalClosure, reason: "" };
      const code = /^\d+$/.test(m[1]) ? Number(m[1]) : NaN;
      if (!isValidWireCode(code)) {
        return {
          type: "error",
          message: `/close: ${
            JSON.stringify(m[1])
          } is not a close code that may be sent (1000-1003, 1007-1014, 3000-4999)`,
        };
      }
      const bytes = new TextEncoder().encode(m[2]).length;
      if (bytes > MAX_CLOSE_REASON) {
        return {
          type: "error",
          message: `/close: the reason is at most ${MAX_CLOSE_REASON} bytes, got ${bytes}`,
        };
      }
      return { type: "close", code, reason: m[2] };
    }
    case "quit":
    case "exit":
      return rest === "" ? { type: "quit" } : { type: "error", message: `/${name} takes nothing` };
    case "help":
    case "?":
      return { type: "help" };
    default:
      return {
        type: "error",
        message: `unknown command /${name}: /help lists them; //${
          name.length > 20 ? "…" : name
        } sends the line with one /`,
      };
  }
}
