/**
 * Fault injection for both programs, so that users can see how their own
 * peer copes with a broken one: `--no-pong` (pings go unanswered),
 * `--freeze-after D` (a hung program: nothing is read or written, but the
 * socket stays open and its kernel still answers TCP), and `--drop-after D`
 * with `--drop-mode fin|rst` (TCP ends without a close frame, with a FIN as
 * a crashed program's kernel sends, or a reset as a middlebox or a lost
 * host would). Each is logged as a `fault` event when it fires.
 *
 * Built on the library's hooks: `autoPong: false`, `freeze()`, `reset()`
 * and `terminate()`.
 *
 * @module
 */

import type { Connection } from "../../mod.ts";
import { formatDuration } from "./duration.ts";
import type { LogFields, Logger } from "./log.ts";

/** How `--drop-after` ends TCP. */
export type DropMode = "fin" | "rst";

/** The faults to inject on each connection. */
export interface Faults {
  /** Leave pings unanswered (the connection is made with `autoPong: false`). */
  noPong: boolean;
  /** Freeze the connection this long after it opened (ms), or never (null). */
  freezeAfter: number | null;
  /** End TCP without a close frame this long after opening (ms), or never (null). */
  dropAfter: number | null;
  /** How the drop ends TCP. */
  dropMode: DropMode;
}

/** No fault at all. */
export const NO_FAULTS: Faults = {
  noPong: false,
  freezeAfter: null,
  dropAfter: null,
  dropMode: "fin",
};

/** Whether any fault is asked for. */
export function anyFault(f: Faults): boolean {
  return f.noPong || f.freezeAfter !== null || f.dropAfter !== null;
}

/**
 * Arms `faults` on a connection that has just opened: timers for the freeze
 * and the drop (cleared when the connection ends first), and a `fault` event
 * for each ping left unanswered. `fields` go on every event (e.g. the id).
 * Call after setting the connection's own `onping`: it is kept.
 */
export function injectFaults(
  ws: Connection,
  faults: Faults,
  log: Logger,
  fields: LogFields = {},
): void {
  if (faults.noPong) {
    const before = ws.onping;
    ws.onping = (payload) => {
      before?.(payload);
      log.info("fault", { ...fields, fault: "no-pong", message: "a ping left unanswered" });
    };
  }
  const timers: ReturnType<typeof setTimeout>[] = [];
  if (faults.freezeAfter !== null) {
    const after = faults.freezeAfter;
    timers.push(setTimeout(() => {
      if (!ws.isOpen) return;
      ws.freeze();
      log.info("fault", {
        ...fields,
        fault: "freeze",
        after_ms: after,
        message: `frozen after ${formatDuration(after)}: nothing is read or written; ` +
          "the socket stays open",
      });
    }, after));
  }
  if (faults.dropAfter !== null) {
    const after = faults.dropAfter;
    const mode = faults.dropMode;
    timers.push(setTimeout(() => {
      if (!ws.isOpen) return;
      const why = `dropped by --drop-after ${formatDuration(after)} (${mode})`;
      let message = `${why}: TCP ended without a close frame, with ` +
        (mode === "rst" ? "a reset (RST)" : "a FIN");
      if (mode === "rst") {
        // reset() ends the connection itself; it says why when no RST could be sent.
        const unavailable = ws.reset();
        if (unavailable) {
          message = `${why}: no reset could be sent (${unavailable}); TCP ended with a FIN`;
        }
      } else {
        ws.terminate(why);
      }
      log.info("fault", { ...fields, fault: "drop", mode, after_ms: after, message });
    }, after));
  }
  if (timers.length > 0) ws.closed.then(() => timers.forEach(clearTimeout));
}
