/**
 * The one way tests wait: {@linkcode waitFor} a promise or a condition, with
 * a bound, and a message that says what never came.
 *
 * ```ts
 * const info = await waitFor(ws.closed, "the connection to end", 3_000);
 * await waitFor(async () => await openGauge() === 0, "the open gauge to drop to 0");
 * await assert.rejects(waitFor(closing, "close()", 150), TimeoutError); // still waiting
 * ```
 *
 * @module
 */

/** The default bound on a wait; generous for a loaded 2-core machine. */
export const DEFAULT_WAIT_MS = 20_000;

/** How often a condition is re-checked. */
const POLL_MS = 10;
/** How often a condition is re-checked when changes are also announced. */
const POLL_WITH_CHANGES_MS = 100;

/** A wait that ran out of time (as opposed to one whose promise rejected). */
export class TimeoutError extends Error {
  /** Always `TimeoutError`. */
  override name = "TimeoutError";
}

/** A condition: a value when it holds, `undefined`, `null` or `false` while it does not. */
export type Condition<T> = () =>
  | T
  | undefined
  | null
  | false
  | Promise<T | undefined | null | false>;

/** How {@linkcode waitFor} re-checks a condition and explains a failure. */
export interface WaitOptions {
  /**
   * Resolves when what the condition reads may have changed (e.g. a process
   * printed something), to re-check it at once rather than at the next poll.
   */
  changed?: () => Promise<void>;
  /** Why waiting longer is pointless (e.g. the process ended), or undefined to go on. */
  hopeless?: () => string | undefined;
  /** What to add to a failure message (e.g. the output so far). */
  context?: () => string;
}

/**
 * Resolves with what `awaited` gives: a promise's value, or the first value a
 * condition returns that is not `undefined`, `null` or `false` (0 and "" count). Rejects with a
 * {@linkcode TimeoutError} saying it was "waiting for `what`" after
 * `timeoutMs`; a rejected promise (or a throwing condition) rejects as it did.
 */
export async function waitFor<T>(
  awaited: Promise<T> | Condition<T>,
  what: string,
  timeoutMs: number = DEFAULT_WAIT_MS,
  options: WaitOptions = {},
): Promise<T> {
  const failure = (message: string) => {
    const context = options.context?.();
    return context ? `${message}\n${context}` : message;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(failure(`timed out after ${timeoutMs}ms waiting for ${what}`))),
      timeoutMs,
    );
  });
  late.catch(() => {}); // Only observed through the race below.
  try {
    if (awaited instanceof Promise) return await Promise.race([awaited, late]);
    while (true) {
      // Listen for a change before checking, so one that comes meanwhile is not missed.
      const changed = options.changed?.();
      const value = await Promise.race([awaited(), late]);
      if (value !== undefined && value !== null && value !== false) return value;
      const hopeless = options.hopeless?.();
      if (hopeless) throw new Error(failure(`${hopeless} while waiting for ${what}`));
      let poll: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<void>((resolve) =>
        poll = setTimeout(resolve, changed ? POLL_WITH_CHANGES_MS : POLL_MS)
      );
      try {
        await Promise.race(changed ? [changed, tick, late] : [tick, late]);
      } finally {
        clearTimeout(poll);
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A deliberate pause: to let time pass on purpose (a connection idles, a
 * peer dribbles). Never to wait for something; that is {@linkcode waitFor}.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
