/**
 * The accept loop of a server: take each connection the listener hands
 * over, and when accepting fails (out of file descriptors, EMFILE, and the
 * like) pause as Go's net/http does rather than spin.
 *
 * @module
 */

import { errorText } from "../errors.ts";

/** First pause after a failed accept (Go's net/http: 5 ms)… */
export const ACCEPT_BACKOFF_MIN_MS = 5;
/** …doubling after each failure in a row, up to 1 s. */
export const ACCEPT_BACKOFF_MAX_MS = 1_000;

/** What the accept loop hands its connections and failures to. */
export interface AcceptSink {
  /** True once shutdown has begun: a failed accept then ends the loop. */
  readonly stopping: boolean;
  /** Takes an accepted connection; must not throw or wait. */
  accepted(conn: Deno.Conn): void;
  /** Reports a failed accept that will be retried. */
  acceptFailed(error: Error): void;
}

/** The pause after a failed accept, given the one before (0 after a success). */
export function nextBackoff(backoff: number): number {
  return backoff ? Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS) : ACCEPT_BACKOFF_MIN_MS;
}

/**
 * Accepts until the listener is closed, handing each connection to `sink`.
 * A failed accept is reported and retried after {@linkcode nextBackoff}.
 */
export async function acceptLoop(listener: Deno.Listener, sink: AcceptSink): Promise<void> {
  let backoff = 0;
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (err) {
      if (sink.stopping || err instanceof Deno.errors.BadResource) return;
      backoff = nextBackoff(backoff);
      sink.acceptFailed(new Error(`accept failed: ${errorText(err)}; retrying in ${backoff}ms`));
      await new Promise((resolve) => setTimeout(resolve, backoff));
      continue;
    }
    backoff = 0;
    sink.accepted(conn);
  }
}
