/**
 * The client's `-H "Name: value"` flags, checked before connecting: a
 * header the handshake sets itself is a usage error that names the flag to
 * use instead, so it is never sent, retried or reconnected with.
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";

/** Headers the opening handshake sets (RFC 6455 §4.1), and what to do instead. */
const RESERVED: Readonly<Record<string, string>> = {
  "host": "the URL sets Host; put the host in the URL",
  "origin": "use --origin",
  "sec-websocket-protocol": "use --subprotocol (repeatable)",
  "sec-websocket-extensions": "use --compression for permessage-deflate",
  "sec-websocket-key": "the client makes a fresh key for each connection",
  "sec-websocket-version": "the client speaks version 13",
  "sec-websocket-accept": "it is the server's answer",
  "upgrade": "the handshake sets it",
  "connection": "the handshake sets it",
  "content-length": "an upgrade request has no body",
  "transfer-encoding": "an upgrade request has no body",
};

/** A token (RFC 9110 §5.6.2): the characters a header name may have. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses one `-H` value, `Name: value`; throws {@linkcode UsageError} for a malformed or reserved one. */
export function parseHeader(text: string): [string, string] {
  const i = text.indexOf(":");
  if (i <= 0) {
    throw new UsageError(`--header takes "Name: value", got "${text}"`);
  }
  const name = text.slice(0, i).trim();
  const value = text.slice(i + 1).trim();
  if (!TOKEN.test(name)) {
    throw new UsageError(`--header: "${name}" is not a valid header name`);
  }
  if (/[\r\n\0]/.test(value)) {
    throw new UsageError(`--header ${name}: the value must be one line`);
  }
  const why = RESERVED[name.toLowerCase()];
  if (why) {
    throw new UsageError(`--header ${name}: the WebSocket handshake sets ${name} itself (${why})`);
  }
  return [name, value];
}
