/**
 * The RFC 6455 §7 closing handshake: status codes, which of them may appear
 * on the wire, and the close frame payload (a 2-byte code then a UTF-8
 * reason, §5.5.1).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1
 * @see https://www.iana.org/assignments/websocket/websocket.xhtml#close-code-number
 * @module
 */

import { ProtocolViolation } from "./errors.ts";

/** 1000: the purpose of the connection is fulfilled (RFC 6455 §7.4.1). */
export const NormalClosure = 1000;
/** 1001: an endpoint is going away, e.g. a server shutting down (§7.4.1). */
export const GoingAway = 1001;
/** 1002: the peer broke the protocol (§7.4.1). */
export const ProtocolError = 1002;
/** 1003: a data type the endpoint cannot accept (§7.4.1). */
export const UnsupportedData = 1003;
/** 1005: no status code was present; never sent on the wire (§7.4.1). */
export const NoStatusReceived = 1005;
/** 1006: closed without a close frame; never sent on the wire (§7.4.1). */
export const AbnormalClosure = 1006;
/** 1007: message data inconsistent with its type, e.g. bad UTF-8 (§7.4.1). */
export const InvalidFramePayloadData = 1007;
/** 1008: a message that violates the endpoint's policy (§7.4.1). */
export const PolicyViolation = 1008;
/** 1009: a message too big to process (§7.4.1). */
export const MessageTooBig = 1009;
/** 1010: the client needed an extension the server did not offer (§7.4.1). */
export const MandatoryExtension = 1010;
/** 1011: the server met an unexpected condition (§7.4.1). */
export const InternalError = 1011;
/** 1012: the service is restarting (IANA registry). */
export const ServiceRestart = 1012;
/** 1013: try again later, e.g. overloaded (IANA registry). */
export const TryAgainLater = 1013;
/** 1014: a gateway got an invalid response upstream (IANA registry). */
export const BadGateway = 1014;
/** 1015: the TLS handshake failed; never sent on the wire (§7.4.1). */
export const TLSHandshake = 1015;

/**
 * Every close code above in one object, for applications:
 * `ws.close(CloseCode.NormalClosure)`, `info.code === CloseCode.GoingAway`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1
 */
export const CloseCode = {
  NormalClosure,
  GoingAway,
  ProtocolError,
  UnsupportedData,
  NoStatusReceived,
  AbnormalClosure,
  InvalidFramePayloadData,
  PolicyViolation,
  MessageTooBig,
  MandatoryExtension,
  InternalError,
  ServiceRestart,
  TryAgainLater,
  BadGateway,
  TLSHandshake,
} as const;

/** The longest close reason: 125 bytes of control payload minus the code. */
export const MAX_CLOSE_REASON = 123;

/**
 * Whether `code` may appear in a close frame (RFC 6455 §7.4.1, §7.4.2):
 * 1000–1003 and 1007–1014 of the registered codes, and 3000–4999 for
 * libraries and applications. 1004 is reserved; 1005, 1006 and 1015 are for
 * reporting only.
 */
export function isValidWireCode(code: number): boolean {
  return (code >= NormalClosure && code <= UnsupportedData) ||
    (code >= InvalidFramePayloadData && code <= BadGateway) ||
    (code >= 3000 && code <= 4999);
}

/** Strict: a reason that is not UTF-8 fails the connection (§8.1). */
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Parses a close frame payload (RFC 6455 §5.5.1). An empty payload means
 * {@linkcode NoStatusReceived}. Throws `ProtocolViolation(1002)` for a
 * 1-byte payload or a code that may not be on the wire, and
 * `ProtocolViolation(1007)` for a reason that is not valid UTF-8.
 */
export function parseClosePayload(
  payload: Uint8Array,
): { code: number; reason: string } {
  if (payload.length === 0) return { code: NoStatusReceived, reason: "" };
  if (payload.length === 1) {
    throw new ProtocolViolation(ProtocolError, "1-byte close payload");
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidWireCode(code)) {
    throw new ProtocolViolation(ProtocolError, `invalid close code ${code}`);
  }
  let reason: string;
  try {
    reason = decoder.decode(payload.subarray(2));
  } catch {
    throw new ProtocolViolation(
      InvalidFramePayloadData,
      "close reason is not valid UTF-8",
    );
  }
  return { code, reason };
}

/**
 * Builds a close frame payload (RFC 6455 §5.5.1): the code in network byte
 * order, then `reason` as UTF-8 cut to {@linkcode MAX_CLOSE_REASON} bytes
 * without splitting a character. Throws a `RangeError` for a code that may
 * not be sent (see {@linkcode isValidWireCode}): that is the caller's bug.
 */
export function buildClosePayload(code: number, reason = ""): Uint8Array {
  if (!Number.isInteger(code) || !isValidWireCode(code)) {
    throw new RangeError(`close code ${code} may not be sent`);
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes; encodeInto() stops before a
  // character that does not fit, so the cut is always on a boundary.
  const capacity = Math.min(MAX_CLOSE_REASON, reason.length * 3);
  const out = new Uint8Array(2 + capacity);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  const { written } = encoder.encodeInto(reason, out.subarray(2));
  return written === capacity ? out : out.slice(0, 2 + written);
}

/**
 * Why a connection ended, one word per path, for logs and metrics.
 * {@linkcode CloseCause} is the union of these.
 */
export const CLOSE_CAUSES = [
  /** The peer sent a close frame first and we answered it (§7.1.3). */
  "peer-close",
  /** TCP keepalive probes went unanswered: the read failed with ETIMEDOUT. */
  "keepalive-timeout",
  /** TCP_USER_TIMEOUT expired: sent data stayed unacknowledged too long. */
  "user-timeout",
  /** A ping we sent got no pong in time. */
  "pong-timeout",
  /** The peer broke RFC 6455; we sent 1002 or 1007 and closed (§7.1.7). */
  "protocol-error",
  /** The peer sent a frame or message over our limit; we sent 1009. */
  "message-too-big",
  /** The peer stopped reading: our writes made no progress for the stall timeout; we sent 1008. */
  "send-overflow",
  /** The server-wide memory budget ran out and this connection held the most; we sent 1013. */
  "memory-budget",
  /** The connection was reset (ECONNRESET) or broke mid-write (EPIPE). */
  "reset",
  /** TCP ended (EOF) without a closing handshake: code 1006 (§7.1.5). */
  "eof",
  /** We are shutting down and closed with 1001 Going Away. */
  "shutdown",
  /** The opening handshake did not complete in time (§4). */
  "handshake-timeout",
  /**
   * The TLS handshake failed: on a server asking for client certificates, the
   * client showed none, one from another CA, or an expired one (reported as
   * code 1015, which never goes on the wire, §7.4.1).
   */
  "tls-handshake",
  /** Our own side called close() and the closing handshake ran (§7.1.2). */
  "local-close",
] as const;

/** Why a connection ended: one of {@linkcode CLOSE_CAUSES}. */
export type CloseCause = typeof CLOSE_CAUSES[number];

/** How a connection ended. */
export interface CloseInfo {
  /** The close code: the peer's, ours, or 1006 when no close frame was exchanged. */
  code: number;
  /** The close reason, "" when there was none. */
  reason: string;
  /** Why the connection ended. */
  cause: CloseCause;
  /** Whether close frames went both ways. */
  clean: boolean;
  /** The underlying error, for causes that come from the socket or a timer. */
  error?: string;
}

const CODE_NAMES: Readonly<Record<number, string>> = {
  [NormalClosure]: "normal closure",
  [GoingAway]: "going away",
  [ProtocolError]: "protocol error",
  [UnsupportedData]: "unsupported data",
  1004: "reserved",
  [NoStatusReceived]: "no status received",
  [AbnormalClosure]: "abnormal closure",
  [InvalidFramePayloadData]: "invalid frame payload data",
  [PolicyViolation]: "policy violation",
  [MessageTooBig]: "message too big",
  [MandatoryExtension]: "mandatory extension",
  [InternalError]: "internal error",
  [ServiceRestart]: "service restart",
  [TryAgainLater]: "try again later",
  [BadGateway]: "bad gateway",
  [TLSHandshake]: "TLS handshake failure",
};

/**
 * A human-readable name for a close code, for logs: "normal closure",
 * "going away", …; "registered code 3000" and "private code 4000" for the
 * application ranges (§7.4.2), "unknown code N" otherwise.
 */
export function closeCodeName(code: number): string {
  const name = CODE_NAMES[code];
  if (name !== undefined) return name;
  if (code >= 3000 && code <= 3999) return `registered code ${code}`;
  if (code >= 4000 && code <= 4999) return `private code ${code}`;
  return `unknown code ${code}`;
}
