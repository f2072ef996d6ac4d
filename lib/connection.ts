/**
 * A WebSocket connection over TCP: a {@linkcode WebSocketConn} that also
 * knows the socket options in force on its TCP stream (read back from the
 * kernel) and names socket errors from TCP_INFO. `serve()` and `dial()`
 * hand these out; this is where the WebSocket layer and the TCP layer meet.
 *
 * @module
 */

import { socketCauseClassifier } from "./tcp/cause.ts";
import { releaseConn, resetConn, type SocketOptions } from "./tcp/sockopt.ts";
import { peerSubject } from "./tcp/node_tls.ts";
import { type ConnectionOptions, type ConnOptions, WebSocketConn } from "./ws/conn.ts";

/**
 * The names of {@linkcode ConnectionOptions}: the compiler checks that the
 * list is complete, so a setting added there is handed down by `serve()` and
 * `dial()` under its own name without another line in either.
 */
const CONNECTION_SETTINGS = {
  maxMessageSize: true,
  maxFragments: true,
  pingInterval: true,
  pongTimeout: true,
  stallTimeout: true,
  closeTimeout: true,
  sendHighWater: true,
  autoPong: true,
} satisfies Record<keyof ConnectionOptions, true>;

const SETTING_NAMES = Object.keys(CONNECTION_SETTINGS) as (keyof ConnectionOptions)[];

/**
 * The connection settings out of a larger options object (`ServeOptions`,
 * `DialOptions`), each under its own name; a setting `options` leaves out
 * takes its value from `defaults`, and one absent from both stays absent
 * (the connection's own default).
 */
export function connectionSettings(
  options: ConnectionOptions,
  defaults?: ConnectionOptions,
): ConnectionOptions {
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const value = options[name] ?? defaults?.[name];
    if (value !== undefined) out[name] = value;
  }
  return out as ConnectionOptions;
}

/** A WebSocket connection on a TCP (or TLS) stream, with its TCP options read back. */
export class Connection extends WebSocketConn {
  /** The keepalive, TCP_NODELAY and TCP_USER_TIMEOUT in force on the socket, as the kernel reports them. */
  readonly keepalive: SocketOptions;
  /**
   * The subject of the peer's TLS certificate, e.g. `CN=alice`: on a server,
   * the client's certificate checked against `tls.clientCa`; on a client, the
   * server's, when the connection went through `node:tls` (a client
   * certificate, `insecure`, or a pinned self-signed certificate; Deno's own
   * TLS does not show it). Null otherwise.
   */
  readonly peerSubject: string | null;
  #conn: Deno.Conn;

  /**
   * Wraps a TCP or TLS stream whose opening handshake is done.
   *
   * @param conn the stream, after the opening handshake
   * @param keepalive what applying the keepalive policy read back
   * @param options the WebSocket options; socket errors are named from TCP_INFO unless `classifyError` is given
   */
  constructor(conn: Deno.Conn, keepalive: SocketOptions, options: ConnOptions) {
    super(conn, {
      ...options,
      classifyError: options.classifyError ??
        socketCauseClassifier(conn, {
          keepAlive: keepalive.keepAlive,
          userTimeoutMs: keepalive.userTimeout,
        }),
    });
    this.keepalive = keepalive;
    this.peerSubject = peerSubject(conn);
    this.#conn = conn;
    // The fd finder may hand this conn's fd to a new one once it is closed.
    this.closed.then(() => releaseConn(conn));
  }

  /**
   * Ends TCP with a reset (RST) instead of a FIN, as a crashed host or a
   * middlebox would: for fault injection. Returns null, or why a reset
   * could not be sent (TCP then ends with a FIN).
   */
  reset(): string | null {
    const why = resetConn(this.#conn);
    this.terminate("reset by this side");
    return why;
  }
}
