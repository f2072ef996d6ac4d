/**
 * The one way both programs learn they should stop: SIGINT (Ctrl-C),
 * SIGTERM (`kill`, `docker stop`, systemd), the end of the npm they were
 * started through (see `launcher.ts`), or a reason of the program's own
 * (a worker whose supervisor is gone, Ctrl-C read by the line editor).
 *
 * @module
 */

import { watchLauncher } from "./launcher.ts";

/** Why a program stops; `signal` is what its `shutdown` event names. */
export interface StopRequest {
  /** `SIGINT`, `SIGTERM`, `launcher-gone`, or the program's own reason. */
  signal: string;
  /** A sentence for the log, when the name alone does not say enough. */
  message?: string;
}

/** Resolves once with the first request to stop. */
export interface Stop {
  /** The first request. */
  readonly requested: Promise<StopRequest>;
  /** Asks to stop for a reason of the program's own; later requests are ignored. */
  request(reason: StopRequest): void;
}

/**
 * Starts listening, from now on, for SIGINT, SIGTERM and (with `launcher`)
 * the end of the npm chain this program was started through. Call it
 * before announcing that the program is ready, so a stop sent right after
 * is not lost; call it once per process.
 */
export function listenForStop(options: { launcher: boolean }): Stop {
  const { promise, resolve } = Promise.withResolvers<StopRequest>();
  // Before the signal handlers: the watch reads which signals were ignored when we started.
  if (options.launcher) {
    watchLauncher((launcher) =>
      resolve({
        signal: "launcher-gone",
        message: `${launcher.command} (pid ${launcher.pid}), which started this program, ` +
          "is gone: stopping as on SIGTERM",
      })
    );
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => resolve({ signal }));
  }
  return { requested: promise, request: resolve };
}
