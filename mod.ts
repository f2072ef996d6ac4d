/**
 * keepalive-ws: WebSockets for Deno whose TCP keepalive behaves like Go's
 * (on, idle 15 s, interval 15 s, 9 probes) on both ends, which report the
 * keepalive really in force on each socket, and which name why every
 * connection ended.
 *
 * ```ts
 * import { dial, serve, tuneSocket } from "./mod.ts";
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
 * const { code, cause } = await ws.close(1000, "bye");
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
 * Layers: `lib/ws/` is the WebSocket protocol (a sans-I/O core) and the
 * connection over any stream; `lib/tcp/` tunes and reads TCP sockets;
 * `lib/serve.ts` and `lib/dial.ts` join the two.
 *
 * @module
 */

export {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MEMORY_BUDGET,
  DEFAULT_SERVER_PING_INTERVAL_MS,
  DEFAULT_SERVER_PONG_TIMEOUT_MS,
  type Refusal,
  serve,
  type ServeOptions,
  type Server,
  ServerRequest,
  SHUTDOWN_TIMEOUT_MS,
  type UpgradeOptions,
} from "./lib/serve.ts";
export { DEFAULT_DIAL_TIMEOUT_MS, dial, type DialOptions } from "./lib/dial.ts";
export { type CompressionOptions, Connection, type ConnectionOptions } from "./lib/connection.ts";
export {
  DEFAULT_COMPRESSION_THRESHOLD,
  type DeflateParams,
  PERMESSAGE_DEFLATE,
  PerMessageDeflate,
} from "./lib/ws/deflate.ts";
export {
  type CloseCause,
  type CloseInfo,
  type ConnOptions,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  type ErrorClassifier,
  type Message,
  type PingStats,
  type Role,
  type Traffic,
  WebSocketConn,
} from "./lib/ws/conn.ts";
export { DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE } from "./lib/ws/read.ts";
export {
  AbnormalClosure,
  BadGateway,
  CLOSE_CAUSES,
  closeCodeName,
  GoingAway,
  InternalError,
  InvalidFramePayloadData,
  isValidWireCode,
  MandatoryExtension,
  MessageTooBig,
  NormalClosure,
  NoStatusReceived,
  PolicyViolation,
  ProtocolError,
  ServiceRestart,
  TLSHandshake,
  TryAgainLater,
  UnsupportedData,
} from "./lib/ws/close.ts";
export { HandshakeError, ProtocolViolation } from "./lib/ws/errors.ts";
export { type BudgetMember, type Eviction, MemoryBudget } from "./lib/ws/budget.ts";
export { type WatchdogMember } from "./lib/ws/watchdog.ts";
export {
  DEFAULT_SEND_HIGH_WATER,
  Progress,
  Protocol,
  type ProtocolHandler,
  type ProtocolOptions,
  State,
} from "./lib/ws/protocol.ts";
export { type TuneOptions, tuneSocket } from "./lib/tcp/tune.ts";
export {
  type ApplyOptions,
  applyPolicy,
  applyToListener,
  kernelKeepAliveDefaults,
  readSocketOptions,
  resetConn,
  type SocketOptions,
  sockoptUnavailableReason,
} from "./lib/tcp/sockopt.ts";
export {
  DEFAULT_KEEPALIVE_COUNT,
  DEFAULT_KEEPALIVE_IDLE_MS,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  type KeepAliveConfig,
  type KeepAlivePolicy,
  type KernelKeepAlive,
  LINUX_MAX_KEEPCNT,
  LINUX_MAX_KEEPIDLE_S,
  LINUX_MAX_KEEPINTVL_S,
  LINUX_MIN_KEEPALIVE_S,
  LINUX_MIN_KEEPCNT,
  resolveKeepAlive,
  resolveSingleKeepAlive,
  type ValueNames,
  type ValueSource,
  worstCaseDetectionMs,
} from "./lib/tcp/keepalive.ts";
