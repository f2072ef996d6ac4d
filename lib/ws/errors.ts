/**
 * The error types shared by every layer. Each one carries what the layer
 * above needs to answer it: a close code, an HTTP status, or an exit code.
 *
 * @module
 */

/**
 * A violation of RFC 6455 by the peer. The connection answers it on one path:
 * a close frame with {@linkcode ProtocolViolation.code}, then the end of TCP.
 */
export class ProtocolViolation extends Error {
  /** The close code to send (RFC 6455 §7.4.1), e.g. 1002 or 1007. */
  readonly code: number;

  /**
   * A violation that fails the connection with `code`.
   *
   * @param code the close code to send
   * @param message a short reason; it goes on the wire, so at most 123 bytes
   */
  constructor(code: number, message: string) {
    super(message);
    this.name = "ProtocolViolation";
    this.code = code;
  }
}

/** An upgrade request or response that must be refused, with its HTTP status. */
export class HandshakeError extends Error {
  /** The HTTP status to answer with (400, 403, 404, 405, 426, 431, 503…). */
  readonly status: number;
  /** Extra response headers, e.g. `Sec-WebSocket-Version: 13` with a 426. */
  readonly headers: Record<string, string>;
  /** On a client: the start of the refusal's body, which often says why (at most 1 KiB); "" if none. */
  readonly body: string;

  /**
   * A refusal with `status`.
   *
   * @param status the HTTP status code
   * @param message one sentence saying what was wrong
   * @param headers extra response headers
   * @param body the start of a refusal's body, as a client received it
   */
  constructor(
    status: number,
    message: string,
    headers: Record<string, string> = {},
    body = "",
  ) {
    super(message);
    this.name = "HandshakeError";
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
}
