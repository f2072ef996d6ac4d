/**
 * `tuneSocket()`: Go's TCP keepalive for any `Deno.TcpConn` — a WebSocket,
 * a Postgres or Redis client, a raw TCP server — which no Deno API can set
 * (`setKeepAlive` is on or off only, leaving Linux's 7200 s). The values are
 * applied with setsockopt and read back with getsockopt.
 *
 * @module
 */

import { type KeepAliveConfig, resolveKeepAlive } from "./keepalive.ts";
import { applyPolicy, type SocketOptions } from "./sockopt.ts";

/** What {@linkcode tuneSocket} sets: Go's `KeepAliveConfig` (ms) plus TCP_USER_TIMEOUT. */
export interface TuneOptions extends KeepAliveConfig {
  /** TCP_USER_TIMEOUT in ms (> 0): fail when sent data stays unacknowledged this long. */
  userTimeout?: number;
}

/**
 * Sets TCP keepalive on `conn` the way Go does (on, idle 15 s, interval
 * 15 s, 9 probes by default; a zero field takes Go's default, a negative
 * one leaves the OS value), plus TCP_NODELAY and an optional
 * TCP_USER_TIMEOUT, and returns what the kernel reports as in force.
 * Throws a RangeError for a value Linux refuses (idle and interval 1 s to
 * 32767 s, count 1 to 127) and a TypeError for one that is not a number,
 * before touching the socket. Without `--allow-ffi` only SO_KEEPALIVE can be
 * set: the result then says `verified: false` and why.
 *
 * ```ts
 * const tcp = await Deno.connect({ hostname: "db.example", port: 5432 });
 * const inForce = tuneSocket(tcp, { idle: 30_000 }); // 30 s / 15 s / 9
 * ```
 */
export function tuneSocket(conn: Deno.Conn, options: TuneOptions = {}): SocketOptions {
  const { userTimeout, ...keepAlive } = options;
  return applyPolicy(conn, resolveKeepAlive(keepAlive), { userTimeout });
}
