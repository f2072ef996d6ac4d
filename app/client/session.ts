/**
 * The client program's behaviour, apart from flag parsing: connect, pump
 * messages between the WebSocket and stdin/stdout, run slash commands, wait
 * for replies, close, reconnect with backoff, and turn the way it ended into
 * an exit code.
 *
 * @module
 */

import {
  type CloseInfo,
  type Connection,
  dial,
  type DialOptions,
  HandshakeError,
  type Message,
} from "../../mod.ts";
import { GoingAway, NormalClosure, NoStatusReceived } from "../../lib/ws/mod.ts";
import { formatAddr } from "../common/addr.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "../common/flags.ts";
import { keepAliveLogFields } from "../common/keepalive.ts";
import { closeLogFields, type Logger, UNSAFE_CHARS } from "../common/log.ts";
import { type Faults, injectFaults } from "../common/faults.ts";
import { closeSummary } from "../common/summary.ts";
import { type Command, parseLine, SLASH_HELP } from "./slash.ts";
import { describeTlsError } from "./tls.ts";
import { base64 } from "./output.ts";

/** First reconnect delay; it doubles each attempt (with jitter). */
export const RECONNECT_BASE_DELAY_MS = 500;
/** Default longest delay between reconnect attempts. */
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000;
/** How long to wait for replies still due when no `--wait` is given. */
export const DEFAULT_REPLY_WAIT_MS = 10_000;
/**
 * How long a connection must have lived for the reconnect backoff to start
 * over. A server that accepts and then closes at once (1013 try again
 * later, 1008, an application's 4000…) keeps the delay growing.
 */
export const STABLE_CONNECTION_MS = 30_000;

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
  /** Stay connected this long after the last send (ms; Infinity: until the server closes or Ctrl-C), or null for "until the replies due". */
  waitMs: number | null;
  /** Send as binary messages. */
  binary: boolean;
  /** Reconnect with backoff after an abnormal end. */
  reconnect: boolean;
  /** Longest delay between reconnect attempts (ms). */
  reconnectMaxDelayMs: number;
  /** Log each ping and pong (`ping`, `pong` events, the round trip on pongs). */
  showPings: boolean;
  /** Faults to inject on each connection. */
  faults: Faults;
  /** Read lines that start with `/` as commands (`/ping`, `/close`, `/quit`, `/help`). */
  slash: boolean;
  /** The `--ca` file, for the hint in a TLS error (null without one). */
  caFile: string | null;
  /** Where events go. */
  logger: Logger;
}

/** A log event that stands for a notice where there is no terminal. */
export interface Notice {
  /** The event's level. */
  level: "info" | "warn";
  /** The event's name. */
  event: string;
  /** Its fields. */
  fields: Record<string, unknown>;
}

/** The client's input and output, replaceable in tests. */
export interface ClientIO {
  /** Lines from stdin, or null when messages come from `--send`. */
  lines: AsyncIterable<string> | null;
  /** Writes one received message to stdout. */
  print(message: Message): void;
  /**
   * Tells the user what a slash command did: on a terminal `text` as a
   * line. Elsewhere `otherwise` says what: a log event, `text` on stderr
   * ("text", the default), or nothing ("none").
   */
  notice(text: string, otherwise?: Notice | "text" | "none"): void;
  /** Shows that the client is ready for the next line (a prompt on a terminal; a no-op on a pipe). */
  ready(): void;
  /** Takes the prompt away before the connection's end is logged. */
  done(): void;
  /** Resolves when the user asks to stop (Ctrl-C). */
  interrupted: Promise<void>;
}

/**
 * Whether a close ends the program successfully: a close handshake with
 * 1000, 1001, or no status code at all (1005: an empty close frame, which
 * npm ws's `ws.close()` sends).
 */
export function isNormalClose(info: CloseInfo): boolean {
  return info.clean &&
    (info.code === NormalClosure || info.code === GoingAway || info.code === NoStatusReceived);
}

/**
 * The reconnect attempt number after a connection ended: back to 1 only
 * after a connection that lived {@linkcode STABLE_CONNECTION_MS}; a failed
 * dial or a connection that ended soon after opening counts one more.
 */
export function nextAttempt(previous: number, end: { opened: boolean; livedMs: number }): number {
  return end.opened && end.livedMs >= STABLE_CONNECTION_MS ? 1 : previous + 1;
}

/** The ceiling of the delay before `attempt` (from 1): doubling from the base, up to `maxMs`. */
export function backoffCeiling(attempt: number, maxMs: number): number {
  return Math.min(maxMs, RECONNECT_BASE_DELAY_MS * 2 ** Math.min(attempt - 1, 20));
}

/** Renders a received message as one line: text as is, binary as base64 (see app/output.ts for the client's rules). */
export function renderMessage(message: Message): string {
  return typeof message === "string" ? message : base64(message);
}

const UNSAFE_RUNS = new RegExp(UNSAFE_CHARS.source + "+", "g");

/** The most of a refusal's body that an error line shows (characters). */
export const MAX_BODY_SHOWN = 200;

/**
 * A refused upgrade's body as part of one line: tags of an HTML page and
 * runs of white space dropped, control characters escaped, at most
 * {@linkcode MAX_BODY_SHOWN} characters; "" when nothing is left.
 */
export function bodyLine(body: string): string {
  const text = body.replace(/<(script|style)\b[^]*?<\/\1>/gi, " ").replace(/<[^>]*>/g, " ")
    .replace(UNSAFE_RUNS, " ").replace(/\s+/g, " ").trim();
  return text.length > MAX_BODY_SHOWN ? text.slice(0, MAX_BODY_SHOWN - 1) + "…" : text;
}

/** One sentence saying why a connection attempt failed. */
export function describeDialError(
  url: URL,
  err: unknown,
  hints: { caFile: string | null } = { caFile: null },
): string {
  const where = url.host;
  if (err instanceof HandshakeError) {
    const body = bodyLine(err.body);
    return `handshake with ${where} failed: ${err.message}${body ? `: ${body}` : ""}`;
  }
  if (err instanceof TypeError) return err.message;
  if (err instanceof Deno.errors.ConnectionRefused) {
    return `cannot connect to ${where}: connection refused`;
  }
  if (err instanceof Deno.errors.TimedOut) {
    return `cannot connect to ${where}: ${err.message}`;
  }
  if (err instanceof Deno.errors.NotFound) {
    return `cannot connect to ${where}: host not found`;
  }
  const text = err instanceof Error ? err.message : String(err);
  const tls = url.protocol === "wss:" ? describeTlsError(text, hints) : null;
  if (tls) return `cannot connect to ${where}: ${tls}`;
  return `cannot connect to ${where}: ${text}`;
}

/** One sentence saying how a connection ended. */
export function describeClose(info: CloseInfo): string {
  const why = info.error ? `: ${info.error}` : info.reason ? `: ${info.reason}` : "";
  return `connection closed: ${info.cause} (code ${info.code}${why})`;
}

/** One sentence for a --count that was not reached in time. */
export function describeCountTimeout(received: number, count: number, waitMs: number): string {
  return `timed out: received ${received} of ${count} messages within ${waitMs}ms of the last send`;
}

/** How one connection ended, for the reconnect loop. */
interface SessionEnd {
  /** The exit code if the program stopped now. */
  exit: number;
  /** Whether the program should stop even with --reconnect. */
  final: boolean;
  /** Whether the handshake succeeded. */
  opened: boolean;
  /** How long the connection lived, from open to close (0 when it never opened). */
  livedMs: number;
}

/** Stdin lines, with a read that outlives the connection it started in, so no line is lost on reconnect. */
class LineSource {
  #iterator: AsyncIterator<string> | null;
  #pending: Promise<IteratorResult<string>> | null = null;
  /** Whether stdin has ended. */
  eof: boolean;

  constructor(lines: AsyncIterable<string> | null) {
    this.#iterator = lines ? lines[Symbol.asyncIterator]() : null;
    this.eof = lines === null;
  }

  /** The next line, or null at EOF; the same read is handed out until it is consumed. */
  next(): Promise<IteratorResult<string>> {
    this.#pending ??= this.#iterator!.next();
    return this.#pending;
  }

  /** Marks the line that {@linkcode next} returned as used. */
  consume(result: IteratorResult<string>): void {
    this.#pending = null;
    if (result.done) this.eof = true;
  }
}

/**
 * Runs the client to the end and returns its exit code. With `reconnect`,
 * a failed dial, an abnormal close or the server going away (1001) starts
 * another attempt after an exponential, jittered delay; the client's own
 * close, a server's 1000 and Ctrl-C end the program.
 */
export async function runClient(
  options: ClientOptions,
  io: ClientIO,
): Promise<number> {
  const log = options.logger;
  let stopped = false;
  io.interrupted.then(() => stopped = true);
  const input = new LineSource(io.lines);
  const total = { received: 0 };
  let failures = 0;
  while (true) {
    const result = await session(options, io, input, total);
    if (!options.reconnect || stopped || result.final) return result.exit;
    failures = nextAttempt(failures, result);
    const ceiling = backoffCeiling(failures, options.reconnectMaxDelayMs);
    // "Equal jitter": half the ceiling, plus a random part of the other half.
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    log.info("reconnect", { attempt: failures, delay_ms: delay, url: options.url.href });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const slept = await Promise.race([
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), delay)),
      io.interrupted.then(() => false),
    ]);
    clearTimeout(timer);
    if (!slept) return result.exit;
  }
}

/** One connection, from dial to close. */
async function session(
  options: ClientOptions,
  io: ClientIO,
  input: LineSource,
  total: { received: number },
): Promise<SessionEnd> {
  const log = options.logger;
  const started = Date.now();
  let opened = started;
  let ws: Connection;
  try {
    const dialed = await Promise.race([
      dial(options.url, options.dial),
      io.interrupted.then(() => null),
    ]);
    if (!dialed) {
      log.error("error", { message: `interrupted while connecting to ${options.url.host}` });
      return { exit: EXIT_FAILURE, final: true, opened: false, livedMs: 0 };
    }
    ws = dialed;
    opened = Date.now();
    log.info("open", {
      id: 1,
      remote: formatAddr(ws.remoteAddr),
      protocol: ws.protocol,
      extensions: ws.extensions || null,
      ...keepAliveLogFields(ws.keepalive),
    });
    if (options.showPings) showPings(ws, log, options.faults.noPong);
    injectFaults(ws, options.faults, log, { id: 1 });
  } catch (err) {
    log.error("error", { message: describeDialError(options.url, err, options) });
    // An option the library cannot use (a header the handshake sets…) will
    // not work on the next attempt either: it is a usage error.
    if (err instanceof TypeError) {
      return { exit: EXIT_USAGE, final: true, opened: false, livedMs: 0 };
    }
    return { exit: EXIT_FAILURE, final: false, opened: false, livedMs: 0 };
  }

  // Replies due are counted per connection: what was sent on a dead one will not come back.
  let sent = 0;
  let received = 0;
  let lastSend = Date.now();
  let wakeWaiter: (() => void) | null = null;
  const wake = () => wakeWaiter?.();
  const counted = Promise.withResolvers<null>();
  ws.onmessage = (message) => {
    if (countReached(options, total)) return;
    received++;
    total.received++;
    io.print(message);
    if (countReached(options, total)) counted.resolve(null);
    wake();
  };
  ws.closed.then(wake);

  const send = (text: string) => {
    sent++;
    lastSend = Date.now();
    ws.send(options.binary ? new TextEncoder().encode(text) : text).catch(
      () => {},
    );
  };

  // Input: --send messages (again on each connection), or stdin lines until
  // EOF, /quit or /close.
  let userClose: { code: number; reason: string } | null = null;
  if (!io.lines) {
    for (const text of options.send) send(text);
  } else {
    while (ws.isOpen && !input.eof && !countReached(options, total)) {
      io.ready();
      const next = await Promise.race([
        input.next(),
        ws.closed.then(() => null),
        io.interrupted.then(() => null),
        counted.promise,
      ]);
      if (!next) break;
      input.consume(next);
      if (next.done) break;
      const command: Command = options.slash
        ? parseLine(next.value)
        : { type: "send", text: next.value };
      if (command.type === "send") send(command.text);
      else if (command.type === "close") userClose = command;
      else if (command.type === "quit") userClose = { code: NormalClosure, reason: "" };
      else runCommand(command, ws, io, options.showPings);
      if (userClose) break;
    }
  }

  // Wait: for --count messages, for the replies due, or for --wait after the
  // last send (Infinity: until the server closes or Ctrl-C).
  const bound = options.waitMs ?? DEFAULT_REPLY_WAIT_MS;
  const satisfied = () =>
    options.count > 0 ? countReached(options, total) : options.waitMs === null && received >= sent;
  let interrupted = false;
  while (ws.isOpen && !interrupted && !userClose && !satisfied()) {
    const remaining = bound - (Date.now() - lastSend);
    if (remaining <= 0) break;
    const timer = Promise.withResolvers<void>();
    wakeWaiter = timer.resolve;
    const t = Number.isFinite(remaining) ? setTimeout(timer.resolve, remaining) : undefined;
    interrupted = await Promise.race([
      timer.promise.then(() => false),
      io.interrupted.then(() => true),
    ]);
    clearTimeout(t);
    wakeWaiter = null;
  }
  const shortOfCount = options.count > 0 && !countReached(options, total) && !interrupted &&
    !userClose;

  const ours = ws.isOpen;
  const info = ours
    ? await ws.close(userClose?.code ?? NormalClosure, userClose?.reason ?? "")
    : await ws.closed;
  const livedMs = Date.now() - opened;
  io.done();
  log.info("close", { id: 1, ...closeLogFields(info, started), ...closeSummary(ws) });
  if (userClose && ours) {
    // The user's own /close or /quit: done, whatever the code, once the server answered.
    if (info.clean) return { exit: EXIT_OK, final: true, opened: true, livedMs };
    log.error("error", { message: describeClose(info) });
    return { exit: EXIT_FAILURE, final: true, opened: true, livedMs };
  }
  if (shortOfCount && ours) {
    log.error("error", {
      message: describeCountTimeout(total.received, options.count, bound),
    });
    return { exit: EXIT_FAILURE, final: true, opened: true, livedMs };
  }
  if (isNormalClose(info)) {
    // The server going away (1001) is what --reconnect is for; anything else is the end.
    const final = ours || info.code !== GoingAway;
    return { exit: EXIT_OK, final, opened: true, livedMs };
  }
  log.error("error", { message: describeClose(info) });
  return { exit: EXIT_FAILURE, final: false, opened: true, livedMs };
}

/**
 * Runs `/ping` (the pong's round trip is shown; with --show-pings its
 * `pong` event is logged already) and `/help`, or reports a command that is
 * wrong. `/close` and `/quit` end the session instead.
 */
function runCommand(command: Command, ws: Connection, io: ClientIO, showPings: boolean): void {
  switch (command.type) {
    case "ping": {
      const payload = new TextEncoder().encode(command.data);
      ws.ping(payload).then(
        (rtt) =>
          io.notice(
            `pong: round trip ${rtt} ms`,
            showPings ? "none" : {
              level: "info",
              event: "pong",
              fields: { id: 1, dir: "received", rtt_ms: rtt },
            },
          ),
        () => io.notice("no pong: the connection closed first"),
      );
      return;
    }
    case "help":
      io.notice(SLASH_HELP);
      return;
    case "error":
      io.notice(command.message, {
        level: "warn",
        event: "command",
        fields: { message: command.message },
      });
      return;
  }
}

/**
 * `--show-pings`: a `ping` event for each ping sent or received and a
 * `pong` event for each pong, with `dir` (sent or received); a pong that
 * answers one of our pings carries its round trip, `rtt_ms`.
 */
export function showPings(ws: Connection, log: Logger, noPong: boolean): void {
  ws.onpingsent = (payload) => log.info("ping", { id: 1, dir: "sent", bytes: payload.length });
  ws.onping = (payload) => {
    log.info("ping", { id: 1, dir: "received", bytes: payload.length });
    if (!noPong) log.info("pong", { id: 1, dir: "sent", bytes: payload.length });
  };
  ws.onpong = (rttMs) => log.info("pong", { id: 1, dir: "received", rtt_ms: rttMs });
}

function countReached(
  options: ClientOptions,
  total: { received: number },
): boolean {
  return options.count > 0 && total.received >= options.count;
}
