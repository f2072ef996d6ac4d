/**
 * The settings of a connection, their defaults and its fixed limits: what
 * `serve()` and `dial()` take as they are ({@linkcode ConnectionOptions}),
 * what a `WebSocketConn` also needs from its handshake
 * ({@linkcode ConnOptions}), and the default error classifier.
 *
 * @module
 */

import type { CloseCause } from "./close.ts";
import type { MemoryBudget } from "./budget.ts";
import type { Role } from "./protocol.ts";
import type { PerMessageDeflate } from "./compression.ts";

/**
 * How long a closing side waits for the other's close frame, or for TCP to end
 * after the close handshake, before it ends TCP itself.
 */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

/**
 * How long a write may make no progress before the peer is judged to have
 * stopped reading: the connection then fails with 1008, cause
 * `send-overflow`. A slow peer that reads makes progress; only a stuck one
 * is cut.
 */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * How long a failing connection (RFC 6455 §7.1.7) waits, once its close
 * frame is written, for the peer to end TCP before it ends TCP anyway; and
 * how long it tries to write the close frame to a peer that had stopped
 * taking our data. Otherwise writing the close frame is bounded by the
 * closing timeout.
 */
export const FAIL_FLUSH_TIMEOUT_MS = 1_000;

/** Names a socket error as a close cause; `sentLast` says whether we wrote after we last read. */
export type ErrorClassifier = (err: unknown, facts: { sentLast: boolean }) => CloseCause;

/**
 * The settings of a connection that `serve()` and `dial()` take as they
 * are. Durations are in milliseconds.
 */
export interface ConnectionOptions {
  /** Largest message accepted, in bytes (default 16 MiB). */
  maxMessageSize?: number;
  /** Most frames per message (default 16,384). */
  maxFragments?: number;
  /** Send a ping this often (ms); 0 turns pings off. */
  pingInterval?: number;
  /** Fail with `pong-timeout` when nothing arrives for this long (ms); 0 turns it off. */
  pongTimeout?: number;
  /** Fail with `send-overflow` when a write makes no progress for this long (ms, default 30 s); 0 = never. */
  stallTimeout?: number;
  /** Bound on each wait of the closing handshake (ms, default 5 s). */
  closeTimeout?: number;
  /** Queued outgoing bytes above which reading pauses (default 1 MiB). */
  sendHighWater?: number;
  /** Answer pings (default true); false plays a broken peer, for fault injection. */
  autoPong?: boolean;
}

/** Options of a `WebSocketConn`: the connection settings and what the handshake decided. */
export interface ConnOptions extends ConnectionOptions {
  /** `server` expects masked frames and sends unmasked ones; `client` the reverse. */
  role: Role;
  /** Bytes that arrived with the handshake: the first frames. */
  initial?: Uint8Array;
  /** The subprotocol agreed in the handshake, or null. */
  protocol?: string | null;
  /** permessage-deflate, when the handshake agreed it (RFC 7692). */
  deflate?: PerMessageDeflate | null;
  /** A memory budget shared with other connections; this one joins it. */
  budget?: MemoryBudget;
  /** Names socket errors (e.g. with TCP_INFO); the default knows only the error's type. */
  classifyError?: ErrorClassifier;
  /** The clock, in ms (default `Date.now`); tests inject one. */
  clock?: () => number;
}

/** The default {@linkcode ErrorClassifier}: what the error's type alone says. */
export function classifyByType(err: unknown, facts: { sentLast: boolean }): CloseCause {
  if (err instanceof Deno.errors.TimedOut) {
    return facts.sentLast ? "user-timeout" : "keepalive-timeout";
  }
  // A TLS peer that ends TCP without close_notify ended it all the same.
  if (err instanceof Deno.errors.UnexpectedEof || /close_notify/i.test(String(err))) return "eof";
  return "reset";
}
