/**
 * The client program's behaviour, apart from flag parsing: connect, pump
 * messages between the WebSocket and stdin/stdout, wait for replies, close,
 * reconnect with backoff, and turn the way it ended into an exit code.
 *
 * @module
 */

import { GoingAway, NormalClosure } from "./close.ts";
import type { CloseInfo, Message, WebSocketConn } from "./conn.ts";
import { dial, type DialOptions } from "./dial.ts";
import { HandshakeError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { EXIT_FAILURE, EXIT_OK } from "./cli.ts";

/** First reconnect delay; it doubles each attempt (with jitter). */
export const RECONNECT_BASE_DELAY_MS = 500;
/** Default longest delay between reconnect attempts. */
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000;
/** How long to wait for replies still due when no `--wait` is given. */
export const DEFAULT_REPLY_WAIT_MS = 10_000;

/** What the client program does. */
export interface ClientOptions {
  /** The server's URL. */
  url: URL;
  /** Connection options (keepalive, headers, TLS, heartbeat). */
  dial: DialOptions;
  /** Messages to send instead of reading stdin. */
  send: string[];
  /** Exit after this many messages received (0 = not set). */
  count: number;
  /** Stay connected this long after the last send (ms), or null for "until the replies due". */
  waitMs: number | null;
  /** Send as binary messages. */
  binary: boolean;
  /** Reconnect with backoff after an abnormal end. */
  reconnect: boolean;
  /** Longest delay between reconnect attempts (ms). */
  reconnectMaxDelayMs: number;
  /** Where events go. */
  logger: Logger;
}

/** The client's input and output, replaceable in tests. */
export interface ClientIO {
  /** Lines from stdin, or null when messages come from `--send`. */
  lines: AsyncIterable<string> | null;
  /** Whether stdin is a terminal: show a prompt and colour. */
  interactive: boolean;
  /** Writes one received message to stdout. */
  print(text: string): void;
  /** Resolves when the user asks to stop (Ctrl-C). */
  interrupted: Promise<void>;
}

/** Whether a close ends the program successfully: a 1000/1001 close handshake. */
export function isNormalClose(info: CloseInfo): boolean {
  return info.wasClean &&
    (info.code === NormalClosure || info.code === GoingAway);
}

/** Renders a received message as one line: text as is, binary as base64. */
export function renderMessage(message: Message): string {
  if (typeof message === "string") return message;
  let bin = "";
  for (let i = 0; i < message.length; i += 0x8000) {
    bin += String.fromCharCode(...message.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** One sentence saying why a connection attempt failed. */
export function describeDialError(url: URL, err: unknown): string {
  const where = url.host;
  if (err instanceof HandshakeError) {
    return `handshake with ${where} failed: ${err.message}`;
  }
  if (err instanceof Deno.errors.ConnectionRefused) {
    return `cannot connect to ${where}: connection refused`;
  }
  if (err instanceof Deno.errors.TimedOut) {
    return `cannot connect to ${where}: ${err.message}`;
  }
  if (err instanceof Deno.errors.NotFound) {
    return `cannot connect to ${where}: host not found`;
  }
  return `cannot connect to ${where}: ${err instanceof Error ? err.message : String(err)}`;
}

/** One sentence saying how a connection ended. */
export function describeClose(info: CloseInfo): string {
  const why = info.error ? `: ${info.error}` : info.reason ? `: ${info.reason}` : "";
  return `connection closed: ${info.cause} (code ${info.code}${why})`;
}

/** Runs the client to the end and returns its exit code. */
export async function runClient(
  options: ClientOptions,
  io: ClientIO,
): Promise<number> {
  const log = options.logger;
  let stopped = false;
  io.interrupted.then(() => stopped = true);
  let attempt = 0;
  const outcome = { sent: 0, received: 0 };
  while (true) {
    attempt++;
    const result = await session(options, io, outcome);
    if (
      result.exit === EXIT_OK || !options.reconnect || stopped || result.final
    ) return result.exit;
    const ceiling = Math.min(
      options.reconnectMaxDelayMs,
      RECONNECT_BASE_DELAY_MS * 2 ** Math.min(attempt - 1, 20),
    );
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    log.info("reconnect", { attempt, delay_ms: delay, url: options.url.href });
    const slept = await Promise.race([
      sleep(delay).then(() => true),
      io.interrupted.then(() => false),
    ]);
    if (!slept) return result.exit;
  }
}

/** One connection, from dial to close. */
async function session(
  options: ClientOptions,
  io: ClientIO,
  outcome: { sent: number; received: number },
): Promise<{ exit: number; final: boolean }> {
  const log = options.logger;
  const started = Date.now();
  let ws: WebSocketConn;
  try {
    const dialed = await Promise.race([
      dial(options.url, options.dial),
      io.interrupted.then(() => null),
    ]);
    if (!dialed) return { exit: EXIT_FAILURE, final: true };
    ws = dialed.ws;
    log.info("open", {
      id: 1,
      remote: dialed.remote,
      protocol: ws.protocol,
      keepalive: {
        enabled: dialed.keepalive.enabled,
        idle_s: dialed.keepalive.idle_s,
        interval_s: dialed.keepalive.interval_s,
        count: dialed.keepalive.count,
        verified: dialed.keepalive.verified,
      },
      user_timeout_ms: dialed.keepalive.user_timeout_ms,
    });
  } catch (err) {
    log.error("error", { message: describeDialError(options.url, err) });
    return { exit: EXIT_FAILURE, final: false };
  }

  let lastSend = Date.now();
  let wakeWaiter: (() => void) | null = null;
  const wake = () => wakeWaiter?.();
  const counted = Promise.withResolvers<null>();
  ws.onmessage = (message) => {
    outcome.received++;
    io.print(renderMessage(message));
    if (countReached(options, outcome)) counted.resolve(null);
    wake();
  };
  ws.closed.then(wake);

  const send = (text: string) => {
    outcome.sent++;
    lastSend = Date.now();
    ws.send(options.binary ? new TextEncoder().encode(text) : text).catch(
      () => {},
    );
  };

  // Input: --send messages, or stdin lines until EOF (or the connection ends).
  if (io.lines) {
    const iterator = io.lines[Symbol.asyncIterator]();
    while (ws.isOpen) {
      const next = await Promise.race([
        iterator.next(),
        ws.closed.then(() => null),
        io.interrupted.then(() => null),
        counted.promise,
      ]);
      if (!next || next.done) break;
      send(next.value);
    }
  } else {
    for (const text of options.send) send(text);
  }

  // Wait: for --count messages, for the replies due, or for --wait after the last send.
  const due = options.count > 0 ? options.count : outcome.sent;
  const bound = options.waitMs ?? DEFAULT_REPLY_WAIT_MS;
  while (ws.isOpen) {
    const doneWaiting = options.waitMs !== null && options.count === 0
      ? Date.now() - lastSend >= bound
      : outcome.received >= due || Date.now() - lastSend >= bound;
    if (doneWaiting) break;
    const remaining = Math.max(0, bound - (Date.now() - lastSend));
    const timer = Promise.withResolvers<void>();
    wakeWaiter = timer.resolve;
    const t = setTimeout(timer.resolve, remaining);
    const interrupted = await Promise.race([
      timer.promise.then(() => false),
      io.interrupted.then(() => true),
    ]);
    clearTimeout(t);
    wakeWaiter = null;
    if (interrupted) break;
  }

  const info = ws.isOpen ? await ws.close(NormalClosure, "") : await ws.closed;
  log.info("close", {
    id: 1,
    code: info.code,
    reason: info.reason,
    cause: info.cause,
    clean: info.wasClean,
    error: info.error,
    duration_ms: Date.now() - started,
  });
  if (isNormalClose(info)) return { exit: EXIT_OK, final: true };
  log.error("error", { message: describeClose(info) });
  return { exit: EXIT_FAILURE, final: false };
}

function countReached(
  options: ClientOptions,
  outcome: { received: number },
): boolean {
  return options.count > 0 && outcome.received >= options.count;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
