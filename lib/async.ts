/**
 * Small promise tools the layers share.
 *
 * @module
 */

/**
 * Resolves like `p`, or rejects with `signal.reason` as soon as `signal`
 * aborts (at once if it already has). `p` is then left to settle quietly:
 * a value that still arrives and has a `close()` (a socket) is closed, and
 * a later rejection goes nowhere. Without a signal, returns `p` itself.
 */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) {
      onAbort();
      p.then(closeLate, () => {});
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    p.then((value) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) closeLate(value);
      resolve(value);
    }, (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(err);
    });
  });
}

/** Closes a value that arrived after its caller gave up on it, if it can be closed. */
function closeLate(value: unknown): void {
  try {
    (value as { close?: () => void } | null)?.close?.();
  } catch {
    // Already closed.
  }
}
