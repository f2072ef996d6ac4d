/**
 * The one error of the HTTP layer: a head that must be refused, with the
 * status to refuse it with.
 *
 * @module
 */

/**
 * The {@linkcode HandshakeError.status} of a response a client cannot use
 * (a malformed head; for an upgrade, one that breaks RFC 6455 §4.1: wrong
 * accept value, missing Upgrade, …): it is not a refusal by the server, so
 * no HTTP status fits.
 */
export const INVALID_RESPONSE = 0;

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
   * @param headers extra response headers (none by default)
   * @param body the start of a refusal's body, as a client received it ("" by default)
   */
  constructor(
    status: number,
    message: string,
    headers?: Record<string, string>,
    body?: string,
  ) {
    super(message);
    this.name = "HandshakeError";
    this.status = status;
    this.headers = headers === undefined ? {} : headers;
    this.body = body === undefined ? "" : body;
  }
}
