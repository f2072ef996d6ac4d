/**
 * Where a connection's messages go: to the application's `onmessage`, to a
 * `for await` loop waiting for one, or into a queue until one of them
 * takes it. While the queue is long the connection stops reading, so TCP
 * slows a peer that sends faster than the application reads.
 *
 * @module
 */

import type { Message } from "./read.ts";

/** Messages the application may leave unread before reading pauses… */
export const MAX_QUEUED_MESSAGES = 64;
/** …or bytes of them. */
export const MAX_QUEUED_BYTES = 1024 * 1024;

/** What an inbox needs of its connection. */
export interface InboxHost {
  /** Input was held and is not any more: let reading go on. */
  resume(): void;
  /** `onmessage` threw while taking queued messages: the application's fault. */
  deliveryFailed(err: unknown): void;
}

/** The messages of one connection on their way to the application. */
export class Inbox {
  #input: { holdInput: boolean };
  #host: InboxHost;
  #receiver: object;
  #handler: ((message: Message) => void) | null = null;
  #queue: Message[] = [];
  #bytes = 0;
  #waiters: PromiseWithResolvers<IteratorResult<Message>>[] = [];
  #ended = false;

  /**
   * @param input what holds the connection's input back (its Protocol), set while the queue is long
   * @param host the connection's machinery, which resumes input
   * @param receiver what `this` is in onmessage: the connection
   */
  constructor(input: { holdInput: boolean }, host: InboxHost, receiver: object) {
    this.#input = input;
    this.#host = host;
    this.#receiver = receiver;
  }

  /** Bytes of the messages queued, unread. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The application's `onmessage`, or null. */
  get handler(): ((message: Message) => void) | null {
    return this.#handler;
  }

  /**
   * Sets `onmessage`. Messages that arrived before it was set are handed to
   * it first, in a microtask.
   */
  setHandler(handler: ((message: Message) => void) | null): void {
    this.#handler = handler;
    if (handler && this.#queue.length > 0) queueMicrotask(() => this.#drain());
  }

  /** A message for the application: to onmessage, a waiting iterator, or the queue. */
  deliver(message: Message): void {
    const handler = this.#handler;
    if (handler) {
      handler.call(this.#receiver, message);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve({ value: message, done: false });
      return;
    }
    this.#queue.push(message);
    this.#bytes += message.length;
    if (this.#queue.length >= MAX_QUEUED_MESSAGES || this.#bytes >= MAX_QUEUED_BYTES) {
      this.#input.holdInput = true; // the application is behind: stop reading
    }
  }

  /** The next message for a `for await` loop; done once the connection has ended and none is left. */
  next(): Promise<IteratorResult<Message>> {
    const value = this.#take();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    const waiter = Promise.withResolvers<IteratorResult<Message>>();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  /** The connection has ended: loops waiting for a message are done. */
  end(): void {
    this.#ended = true;
    for (const w of this.#waiters) w.resolve({ value: undefined, done: true });
    this.#waiters = [];
  }

  /** Hands messages queued before onmessage was set to it. */
  #drain(): void {
    try {
      while (this.#handler && this.#queue.length > 0) {
        this.#handler.call(this.#receiver, this.#take()!);
      }
    } catch (err) {
      this.#host.deliveryFailed(err);
    }
  }

  /** Takes the oldest queued message, resuming input once the queue is short again. */
  #take(): Message | undefined {
    const value = this.#queue.shift();
    if (value === undefined) return undefined;
    this.#bytes -= value.length;
    const input = this.#input;
    if (
      input.holdInput && this.#queue.length < MAX_QUEUED_MESSAGES / 2 &&
      this.#bytes < MAX_QUEUED_BYTES / 2
    ) {
      input.holdInput = false;
      this.#host.resume();
    }
    return value;
  }
}
