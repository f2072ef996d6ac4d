/**
 * The words a `Protocol` (protocol.ts) speaks in: the connection's state, why
 * `process()` returned, which end this is, and the traffic totals.
 *
 * @module
 */

/** The connection's state. */
export const State = {
  /** Messages flow both ways. */
  Open: "open",
  /** A close frame went or came; waiting for the other, or for TCP to end. */
  Closing: "closing",
  /** Finished; nothing more is read or written. */
  Closed: "closed",
} as const;

/** One of {@linkcode State}. */
export type State = typeof State[keyof typeof State];

/** Why `Protocol.process()` returned. */
export const Progress = {
  /** Every complete frame was handled: read more. */
  NeedInput: 0,
  /** Output is above the high-water mark, or input is held: wait, then process again. */
  Paused: 1,
  /** The turn's budget is spent: let others run, then process again. */
  Yield: 2,
} as const;

/** Which end of the connection this is; it decides masking (RFC 6455 §5.3). */
export type Role = "server" | "client";

/** Totals of one connection's traffic. */
export interface Traffic {
  /** Messages received. */
  messagesIn: number;
  /** Payload bytes received. */
  bytesIn: number;
  /** Messages sent. */
  messagesOut: number;
  /** Payload bytes sent. */
  bytesOut: number;
}
