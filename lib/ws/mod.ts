/**
 * keepalive-ws/protocol: the WebSocket protocol without its TCP, for those
 * who bring their own streams or their own I/O.
 *
 * - {@linkcode Protocol} is the sans-I/O core, in the style of
 *   python-websockets' `websockets.protocol`: bytes go in, events and bytes
 *   to send come out. It has no timers, no clock and no `Deno.*`.
 * - {@linkcode WebSocketConn} runs a `Protocol` over any `Deno.Conn`
 *   whose opening handshake is done, with heartbeat, flow control and the
 *   closing handshake. (`serve()` and `dial()` of the main entry point hand
 *   out its TCP-aware subclass, `Connection`.)
 * - The close codes by their RFC 6455 §7.4 names, the close causes, the
 *   memory budget that connections can share, and permessage-deflate.
 *
 * ```ts
 * import { Protocol } from "@keepalive-ws/keepalive-ws/protocol";
 *
 * const p = new Protocol({ role: "client" }, {
 *   message: (m) => console.log("got", m),
 *   ping: () => {},
 *   pong: () => {},
 * });
 * p.receive(new Uint8Array([0x81, 0x02, 0x68, 0x69])); // a text frame, "hi"
 * p.process(); // logs: got hi
 * ```
 *
 * @module
 */

export {
  DEFAULT_SEND_HIGH_WATER,
  Progress,
  Protocol,
  type ProtocolHandler,
  type ProtocolOptions,
  type Role,
  State,
  type Traffic,
} from "./protocol.ts";
export {
  type CloseCause,
  type CloseInfo,
  type ConnectionOptions,
  type ConnOptions,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  type ErrorClassifier,
  type PingStats,
  WebSocketConn,
} from "./conn.ts";
export { DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, type Message } from "./read.ts";
export {
  AbnormalClosure,
  BadGateway,
  CLOSE_CAUSES,
  CloseCode,
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
} from "./close.ts";
export { HandshakeError, ProtocolViolation } from "./errors.ts";
export { type BudgetMember, type Eviction, MemoryBudget } from "./budget.ts";
export { type DeflateParams, PERMESSAGE_DEFLATE } from "./deflate.ts";
export { DEFAULT_COMPRESSION_THRESHOLD, PerMessageDeflate } from "./compression.ts";
