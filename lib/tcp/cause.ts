/**
 * Naming why a TCP connection failed, from the socket itself: the plug-in a
 * WebSocket connection takes as its `classifyError`.
 *
 * Linux fails a connection with ETIMEDOUT on two paths: keepalive probes
 * unanswered while it is idle, or sent data left unacknowledged
 * (TCP_USER_TIMEOUT, else the retransmission limit); probes stop while data
 * waits for an ACK. TCP_INFO tells the two apart: data was sent after the
 * last ACK arrived.
 *
 * @module
 */

import { readTcpTimes } from "./tcpinfo.ts";

/** Why a socket failed, in the words of the WebSocket close causes. */
export type SocketCause = "keepalive-timeout" | "user-timeout" | "reset" | "eof";

/** What the classifier knows of a connection's options. */
export interface CauseOptions {
  /** Whether TCP keepalive is on. */
  keepAlive: boolean;
  /** TCP_USER_TIMEOUT in force (ms, 0 = none). */
  userTimeoutMs: number;
}

/**
 * A classifier for `conn`'s errors: reads TCP_INFO from the dying socket
 * (before it is closed) to tell a keepalive timeout from a user timeout,
 * and a write's EPIPE on a socket the kernel gave up on from a reset. Where
 * TCP_INFO cannot be read, it guesses from whether we sent last.
 */
export function socketCauseClassifier(
  conn: Deno.Conn,
  options: CauseOptions,
): (err: unknown, facts: { sentLast: boolean }) => SocketCause {
  return (err, facts) => {
    if (err instanceof Deno.errors.UnexpectedEof || /close_notify/i.test(String(err))) {
      return "eof"; // a TLS peer that ended TCP without close_notify ended it all the same
    }
    const timedOut = err instanceof Deno.errors.TimedOut;
    const brokenPipe = err instanceof Deno.errors.BrokenPipe;
    if (!timedOut && !brokenPipe) return "reset";
    const times = readTcpTimes(conn);
    const unacked = times === null ? null : times.lastDataSentMs < times.lastAckRecvMs;
    if (brokenPipe) {
      // EPIPE on a socket whose sent data has waited for an ACK past the user timeout.
      const gaveUp = options.userTimeoutMs > 0 && unacked === true && times !== null &&
        times.lastAckRecvMs >= options.userTimeoutMs;
      return gaveUp ? "user-timeout" : "reset";
    }
    const waiting = unacked ?? (options.userTimeoutMs > 0 && facts.sentLast);
    return options.keepAlive && !waiting ? "keepalive-timeout" : "user-timeout";
  };
}
