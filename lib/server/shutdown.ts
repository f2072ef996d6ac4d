/**
 * A server's graceful shutdown, after it stops accepting: every WebSocket
 * is sent Going Away (1001), whoever has not answered within the timeout is
 * cut, and the handlers get a moment to return. Every wait is bounded.
 *
 * @module
 */

import type { Connection } from "../connection.ts";
import { GoingAway } from "../ws/close.ts";

/** How long a graceful shutdown waits for clients to answer close 1001 (ms). */
export const SHUTDOWN_TIMEOUT_MS = 5_000;

/** How long shutdown then waits for the handlers to return (ms). */
export const HANDLER_GRACE_MS = 100;

/**
 * Closes every WebSocket in `connections` with Going Away, waits up to
 * `timeout` ms for their answers, then ends the ones still open.
 */
export async function goAway(connections: ReadonlySet<Connection>, timeout: number): Promise<void> {
  const closing = [...connections].map((ws) =>
    ws.close(GoingAway, "server shutting down", "shutdown")
  );
  await within(Promise.all(closing), timeout);
  // Whoever has not answered by now is cut: the promise is bounded.
  for (const ws of connections) ws.terminate("no answer to close 1001 during shutdown");
}

/** Resolves once `p` settles or `ms` have passed, whichever comes first; rejects if `p` does first. */
export async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}
