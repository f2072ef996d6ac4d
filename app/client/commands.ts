/**
 * What the client does for a slash command that does not end the session
 * (`/ping`, `/help`, a wrong one), and `--show-pings`.
 *
 * @module
 */

import type { Connection } from "../../mod.ts";
import type { Logger } from "../common/log.ts";
import { type Command, SLASH_HELP } from "./slash.ts";

/** A log event that stands for a notice where there is no terminal. */
export interface Notice {
  /** The event's level. */
  level: "info" | "warn";
  /** The event's name. */
  event: string;
  /** Its fields. */
  fields: Record<string, unknown>;
}

/**
 * Tells the user what a command did: on a terminal `text` as a line.
 * Elsewhere `otherwise` says what: a log event, `text` on stderr ("text",
 * the default), or nothing ("none").
 */
export type NoticeWriter = (text: string, otherwise?: Notice | "text" | "none") => void;

/**
 * Runs `/ping` (the pong's round trip is shown; with --show-pings its
 * `pong` event is logged already) and `/help`, or reports a command that is
 * wrong. `/close` and `/quit` end the session instead.
 */
export function runCommand(
  command: Command,
  ws: Connection,
  notice: NoticeWriter,
  showPings: boolean,
): void {
  switch (command.type) {
    case "ping": {
      const payload = new TextEncoder().encode(command.data);
      ws.ping(payload).then(
        (rtt) =>
          notice(
            `pong: round trip ${rtt} ms`,
            showPings ? "none" : {
              level: "info",
              event: "pong",
              fields: { id: 1, dir: "received", rtt_ms: rtt },
            },
          ),
        () => notice("no pong: the connection closed first"),
      );
      return;
    }
    case "help":
      notice(SLASH_HELP);
      return;
    case "error":
      notice(command.message, {
        level: "warn",
        event: "command",
        fields: { message: command.message },
      });
      return;
  }
}

/**
 * `--show-pings`: a `ping` event for each ping sent or received and a
 * `pong` event for each pong, with `dir` (sent or received); a pong that
 * answers one of our pings carries its round trip, `rtt_ms`.
 */
export function showPings(ws: Connection, log: Logger, noPong: boolean): void {
  ws.onpingsent = (payload) => log.info("ping", { id: 1, dir: "sent", bytes: payload.length });
  ws.onping = (payload) => {
    log.info("ping", { id: 1, dir: "received", bytes: payload.length });
    if (!noPong) log.info("pong", { id: 1, dir: "sent", bytes: payload.length });
  };
  ws.onpong = (rttMs) => log.info("pong", { id: 1, dir: "received", rtt_ms: rttMs });
}
