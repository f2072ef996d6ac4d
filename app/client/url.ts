/**
 * The client's URL argument: a `ws://` or `wss://` URL, checked with a
 * usage error that says what is wrong. Without a scheme it is `ws://`:
 * `localhost:8080`, `host:port/path`, `example.com/chat`, `[::1]:8080`
 * (wscat 6.1.0 throws on those instead).
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";

/** Parses and checks a WebSocket URL; throws {@linkcode UsageError} when it is not one. */
export function parseWebSocketUrl(text: string): URL {
  const given = text.trim();
  // No "scheme://": a host[:port][/path], which is ws://. (`new URL("localhost:8080")`
  // would read "localhost:" as the scheme.)
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : `ws://${given}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(
      `invalid URL "${text}": expected ws://HOST[:PORT]/PATH, wss://…, or HOST:PORT[/PATH]`,
    );
  }
  if (url.protocol === "http:" || url.protocol === "https:") {
    const ws = url.protocol === "http:" ? "ws:" : "wss:";
    throw new UsageError(
      `invalid URL "${text}": the scheme must be ws:// or wss://, not ${url.protocol}// ` +
        `(the WebSocket URL of that server is ${ws}//${url.host}${url.pathname}${url.search})`,
    );
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new UsageError(
      `invalid URL "${text}": the scheme must be ws:// or wss://, not ${url.protocol}//`,
    );
  }
  if (url.hostname === "") {
    throw new UsageError(`invalid URL "${text}": no host`);
  }
  if (url.hash) {
    throw new UsageError(
      `invalid URL "${text}": a WebSocket URL has no #fragment`,
    );
  }
  return url;
}
