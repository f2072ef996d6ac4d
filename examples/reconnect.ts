/**
 * A client that stays connected: it dials, and whenever the connection
 * ends other than with a clean 1000 (the server going away with 1001, a
 * 1013, a cut link) it dials again after
 * an exponential delay with jitter. The delay starts over only once a
 * connection has lived a while, so a server that accepts and then drops
 * every connection is not hammered.
 *
 *     deno run --allow-net --allow-ffi examples/reconnect.ts ws://localhost:8080/echo
 *
 * @module
 */

import { CloseCode, type CloseInfo, type Connection, dial, type DialOptions } from "../mod.ts";

/** How a reconnecting client is paced. */
export interface ReconnectOptions extends DialOptions {
  /** First delay (ms); it doubles per failure. */
  baseDelay?: number;
  /** Longest delay (ms). */
  maxDelay?: number;
  /** A connection that lived this long (ms) resets the delay. */
  stableAfter?: number;
  /** Stops the loop. */
  signal?: AbortSignal;
}

/** Why the loop dials again: a failed dial (null) or a connection that ended. */
export type Attempt = { attempt: number; delay: number; last: CloseInfo | null; error?: string };

/**
 * Keeps a connection to `url`: calls `onOpen` with each new one and waits
 * for it to end, then reconnects, unless it ended with a clean 1000 or the
 * signal aborted. Resolves with the last close (null if none ever opened).
 */
export async function keepConnected(
  url: string,
  onOpen: (ws: Connection) => void | Promise<void>,
  options: ReconnectOptions = {},
  onRetry: (a: Attempt) => void = () => {},
): Promise<CloseInfo | null> {
  const base = options.baseDelay ?? 500;
  const max = options.maxDelay ?? 30_000;
  const stable = options.stableAfter ?? 30_000;
  let failures = 0;
  let last: CloseInfo | null = null;
  while (!options.signal?.aborted) {
    let error: string | undefined;
    try {
      const ws = await dial(url, options);
      const opened = Date.now();
      const onAbort = () => ws.close(1000, "client stopping");
      options.signal?.addEventListener("abort", onAbort, { once: true });
      await onOpen(ws);
      last = await ws.closed;
      options.signal?.removeEventListener("abort", onAbort);
      if (last.clean && last.code === CloseCode.NormalClosure) return last;
      failures = Date.now() - opened >= stable ? 1 : failures + 1;
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      failures++;
    }
    const ceiling = Math.min(max, base * 2 ** Math.min(failures - 1, 20));
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2); // equal jitter
    onRetry({ attempt: failures, delay, last, error });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      options.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
  return last;
}

if (import.meta.main) {
  const url = Deno.args[0] ?? "ws://localhost:8080/echo";
  const stop = new AbortController();
  Deno.addSignalListener("SIGINT", () => stop.abort());
  await keepConnected(
    url,
    async (ws) => {
      console.log(`connected to ${url}, keepalive idle ${ws.keepalive.idle}ms`);
      await ws.send(`hello at ${new Date().toISOString()}`);
      for await (const msg of ws) console.log("<", msg);
    },
    { signal: stop.signal },
    (a) => {
      console.log(
        `reconnecting in ${a.delay}ms (attempt ${a.attempt}): ${a.error ?? a.last?.cause}`,
      );
    },
  );
}
