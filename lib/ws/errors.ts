/**
 * The error types of the WebSocket layer. Each one carries what the layer
 * above needs to answer it: a close code or an HTTP status.
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

/** A refused opening handshake: the HTTP layer's error (`lib/http/errors.ts`), under its name here too. */
export { HandshakeError } from "../http/errors.ts";
