/**
 * keepalive-ws: WebSockets for Deno whose TCP keepalive behaves like Go's
 * (on, idle 15 s, interval 15 s, 9 probes) on both ends, which report the
 * keepalive really in force on each socket, and which name why every
 * connection ended.
 *
 * ```ts
 * import { CloseCode, dial, serve, tuneSocket } from "./mod.ts";
 *
 * const server = serve({ hostname: "127.0.0.1", port: 0 }, async (req) => {
 *   if (req.url.pathname !== "/chat") return await req.reject(404, "no such path");
 *   const ws = await req.upgrade();
 *   for await (const msg of ws) await ws.send(msg);
 * });
 *
 * const ws = await dial(`ws://127.0.0.1:${server.addr.port}/chat`);
 * console.log(ws.keepalive); // { keepAlive: true, idle: 15000, interval: 15000, count: 9, … }
 * await ws.send("hi");
 * for await (const msg of ws) { console.log(msg); break; }
 * const { code, cause } = await ws.close(CloseCode.NormalClosure, "bye");
 * await server.shutdown();
 *
 * // Go's keepalive on any TCP connection, read back:
 * const tcp = await Deno.connect({ hostname: "db.example", port: 5432 });
 * tuneSocket(tcp, { idle: 15_000, interval: 15_000, count: 9 });
 * ```
 *
 * Durations are milliseconds. Setting keepalive values needs
 * `--allow-ffi` (setsockopt through libc); without it only SO_KEEPALIVE is
 * set and the read-back says `verified: false`, and why.
 *
 * `serve()` binds `0.0.0.0` (every interface) on port 8080 unless told
 * otherwise; the command-line server binds `localhost`.
 *
 * Two more entry points hold the parts below this door:
 * `@keepalive-ws/keepalive-ws/protocol` (the sans-I/O `Protocol`, the
 * connection over any stream, every close code by name, the memory budget)
 * and `@keepalive-ws/keepalive-ws/tcp` (socket options, set and read back).
 *
 * @module
 */

export { type Refusal, serve, type ServeOptions, type Server } from "./lib/server/serve.ts";
export { ServerRequest, type UpgradeOptions } from "./lib/server/request.ts";
export { dial, type DialOptions } from "./lib/client/dial.ts";
export { Connection } from "./lib/connection.ts";
export { type CompressionOptions } from "./lib/ws/deflate.ts";
export {
  type CloseCause,
  type CloseInfo,
  type ConnectionOptions,
  type PingStats,
  WebSocketConn,
} from "./lib/ws/conn.ts";
export { type Message } from "./lib/ws/read.ts";
export { State, type Traffic } from "./lib/ws/protocol.ts";
export { CLOSE_CAUSES, CloseCode } from "./lib/ws/close.ts";
export { HandshakeError } from "./lib/ws/errors.ts";
export { type Eviction } from "./lib/ws/budget.ts";
export { type TuneOptions, tuneSocket } from "./lib/tcp/tune.ts";
export { type SocketOptions } from "./lib/tcp/sockopt.ts";
export {
  type KeepAliveConfig,
  type KeepAlivePolicy,
  resolveKeepAlive,
  worstCaseDetectionMs,
} from "./lib/tcp/keepalive.ts";
