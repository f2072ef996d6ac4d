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

const noop = () => {};

/** A promise that rejects with `message` without crashing the process when nobody awaits it. */
export function quietRejection(message: string): Promise<never> {
  const p = Promise.reject(new Error(message));
  p.catch(noop);
  return p;
}

let turnWaiters: (() => void)[] | null = null;

/**
 * Resolves after one turn of the event loop, in which other connections'
 * reads, timers and writes run. A message through a fresh MessageChannel is
 * delivered like I/O (a timer would be clamped to 4 ms once nested); every
 * connection yielding in the same turn shares it.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    if (turnWaiters !== null) {
      turnWaiters.push(resolve);
      return;
    }
    turnWaiters = [resolve];
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      const waiters = turnWaiters!;
      turnWaiters = null;
      for (const w of waiters) w();
    };
    port2.postMessage(null);
  });
}
