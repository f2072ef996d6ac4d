/**
 * The client's URL argument: a `ws://` or `wss://` URL, checked with a
 * usage error that says what is wrong.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Parses and checks a WebSocket URL; throws {@linkcode UsageError} when it is not one. */
export function parseWebSocketUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `invalid URL "${text}": expected ws://HOST[:PORT]/PATH or wss://…`,
    );
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new UsageError(
      `invalid URL "${text}": the scheme must be ws:// or wss://, not ${url.protocol}//`,
    );
  }
  if (url.hash) {
    throw new UsageError(
      `invalid URL "${text}": a WebSocket URL has no #fragment`,
    );
  }
  return url;
}
