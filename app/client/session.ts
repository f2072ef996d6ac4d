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
  type Message,
} from "../../mod.ts";
import { GoingAway, NormalClosure } from "../../lib/ws/mod.ts";
import { formatAddr } from "../common/addr.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "../common/run.ts";
import { keepAliveLogFields } from "../common/keepalive.ts";
import { closeLogFields, type Logger } from "../common/log.ts";
import { type Faults, injectFaults } from "../common/faults.ts";
import { closeSummary } from "../common/summary.ts";
import { type NoticeWriter, runCommand, showPings } from "./commands.ts";
import {
  describeClose,
  describeCountTimeout,
  describeDialError,
  isNormalClose,
} from "./describe.ts";
import { type Command, parseLine } from "./slash.ts";
import { proxyLogFields } from "./proxy_log.ts";

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
  /** Connection options (keepalive, headers, TLS, heartbeat), as `dial()` takes them. */
  dial: DialOptions;
  /** Messages to send instead of reading stdin. */
  send: string[];
  /** Exit after this many messages received (0 = not set). */
  count: number;
  /** Stay connected this long after the last send (ms; Infinity: until the server closes or Ctrl-C), or null for "until the replies due". */
  wait: number | null;
  /** Send as binary messages. */
  binary: boolean;
  /** Reconnect with backoff after an abnormal end. */
  reconnect: boolean;
  /** Longest delay between reconnect attempts (ms). */
  reconnectMaxDelay: number;
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

/** The client's input and output, replaceable in tests. */
export interface ClientIO {
  /** Lines from stdin, or null when messages come from `--send`. */
  lines: AsyncIterable<string> | null;
  /** Writes one received message to stdout. */
  print(message: Message): void;
  /** Tells the user what a slash command did (see {@linkcode NoticeWriter}). */
  notice: NoticeWriter;
  /** Shows that the client is ready for the next line (a prompt on a terminal; a no-op on a pipe). */
  ready(): void;
  /** Takes the prompt away before the connection's end is logged. */
  done(): void;
  /** Resolves when the user asks to stop (Ctrl-C). */
  interrupted: Promise<void>;
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

/** What the sessions of one run share: stdin, and the messages received over every connection. */
interface RunState {
  input: LineSource;
  received: number;
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
  const run: RunState = { input: new LineSource(io.lines), received: 0 };
  let failures = 0;
  while (true) {
    const result = await new Session(options, io, run).run();
    if (!options.reconnect || stopped || result.final) return result.exit;
    failures = nextAttempt(failures, result);
    const ceiling = backoffCeiling(failures, options.reconnectMaxDelay);
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
class Session {
  readonly #options: ClientOptions;
  readonly #io: ClientIO;
  readonly #run: RunState;
  readonly #log: Logger;
  readonly #started = Date.now();
  #opened = this.#started;
  // Replies due are counted per connection: what was sent on a dead one will not come back.
  #sent = 0;
  #received = 0;
  /** When the last message went out (from the open until the first). */
  #lastSend = 0;
  #wakeWaiter: (() => void) | null = null;
  readonly #counted = Promise.withResolvers<null>();
  /** The user's own /close or /quit. */
  #userClose: { code: number; reason: string } | null = null;

  constructor(options: ClientOptions, io: ClientIO, run: RunState) {
    this.#options = options;
    this.#io = io;
    this.#run = run;
    this.#log = options.logger;
  }

  /** Dials, pumps, waits, closes; says how it ended. */
  async run(): Promise<SessionEnd> {
    const ws = await this.#open();
    if ("exit" in ws) return ws;
    this.#listen(ws);
    await this.#input(ws);
    const interrupted = await this.#wait(ws);
    return await this.#finish(ws, interrupted);
  }

  /** Dials; the connection, or how the attempt ended. */
  async #open(): Promise<Connection | SessionEnd> {
    const { url, faults } = this.#options;
    const log = this.#log;
    try {
      const ws = await Promise.race([
        dial(url, this.#options.dial),
        this.#io.interrupted.then(() => null),
      ]);
      if (!ws) {
        log.error("error", { message: `interrupted while connecting to ${url.host}` });
        return { exit: EXIT_FAILURE, final: true, opened: false, livedMs: 0 };
      }
      this.#opened = Date.now();
      log.info("open", {
        id: 1,
        remote: formatAddr(ws.remoteAddr),
        ...proxyLogFields(this.#options.dial),
        protocol: ws.protocol,
        extensions: ws.extensions || null,
        ...(ws.peerSubject !== null ? { peer_subject: ws.peerSubject } : {}),
        ...keepAliveLogFields(ws.keepalive),
      });
      if (this.#options.showPings) showPings(ws, log, faults.noPong);
      injectFaults(ws, faults, log, { id: 1 });
      return ws;
    } catch (err) {
      log.error("error", { message: describeDialError(url, err, this.#options) });
      // An option the library cannot use (a header the handshake sets…) will
      // not work on the next attempt either: it is a usage error.
      const usage = err instanceof TypeError;
      return { exit: usage ? EXIT_USAGE : EXIT_FAILURE, final: usage, opened: false, livedMs: 0 };
    }
  }

  #countReached(): boolean {
    return this.#options.count > 0 && this.#run.received >= this.#options.count;
  }

  #listen(ws: Connection): void {
    this.#lastSend = Date.now();
    ws.onmessage = (message) => {
      if (this.#countReached()) return;
      this.#received++;
      this.#run.received++;
      this.#io.print(message);
      if (this.#countReached()) this.#counted.resolve(null);
      this.#wakeWaiter?.();
    };
    ws.closed.then(() => this.#wakeWaiter?.());
  }

  #send(ws: Connection, text: string): void {
    this.#sent++;
    this.#lastSend = Date.now();
    ws.send(this.#options.binary ? new TextEncoder().encode(text) : text).catch(() => {});
  }

  /** Input: --send messages (again on each connection), or stdin lines until EOF, /quit or /close. */
  async #input(ws: Connection): Promise<void> {
    const io = this.#io;
    const input = this.#run.input;
    if (!io.lines) {
      for (const text of this.#options.send) this.#send(ws, text);
      return;
    }
    while (ws.isOpen && !input.eof && !this.#countReached()) {
      io.ready();
      const next = await Promise.race([
        input.next(),
        ws.closed.then(() => null),
        io.interrupted.then(() => null),
        this.#counted.promise,
      ]);
      if (!next) break;
      input.consume(next);
      if (next.done) break;
      const command: Command = this.#options.slash
        ? parseLine(next.value)
        : { type: "send", text: next.value };
      if (command.type === "send") this.#send(ws, command.text);
      else if (command.type === "close") this.#userClose = command;
      else if (command.type === "quit") this.#userClose = { code: NormalClosure, reason: "" };
      else runCommand(command, ws, io.notice, this.#options.showPings);
      if (this.#userClose) break;
    }
  }

  /**
   * Waits for --count messages, for the replies due, or for --wait after
   * the last send (Infinity: until the server closes or Ctrl-C); true when
   * Ctrl-C ended the wait.
   */
  async #wait(ws: Connection): Promise<boolean> {
    const { count, wait } = this.#options;
    const bound = wait ?? DEFAULT_REPLY_WAIT_MS;
    const satisfied = () =>
      count > 0 ? this.#countReached() : wait === null && this.#received >= this.#sent;
    let interrupted = false;
    while (ws.isOpen && !interrupted && !this.#userClose && !satisfied()) {
      const remaining = bound - (Date.now() - this.#lastSend);
      if (remaining <= 0) break;
      const timer = Promise.withResolvers<void>();
      this.#wakeWaiter = timer.resolve;
      const t = Number.isFinite(remaining) ? setTimeout(timer.resolve, remaining) : undefined;
      interrupted = await Promise.race([
        timer.promise.then(() => false),
        this.#io.interrupted.then(() => true),
      ]);
      clearTimeout(t);
      this.#wakeWaiter = null;
    }
    return interrupted;
  }

  /** Closes (unless the server did), logs the close, and turns it into an exit code. */
  async #finish(ws: Connection, interrupted: boolean): Promise<SessionEnd> {
    const { count, wait } = this.#options;
    const userClose = this.#userClose;
    const shortOfCount = count > 0 && !this.#countReached() && !interrupted && !userClose;
    const ours = ws.isOpen;
    const info: CloseInfo = ours
      ? await ws.close(userClose?.code ?? NormalClosure, userClose?.reason ?? "")
      : await ws.closed;
    const livedMs = Date.now() - this.#opened;
    const end = (exit: number, final: boolean): SessionEnd => ({
      exit,
      final,
      opened: true,
      livedMs,
    });
    this.#io.done();
    const log = this.#log;
    log.info("close", { id: 1, ...closeLogFields(info, this.#started), ...closeSummary(ws) });
    if (userClose && ours) {
      // The user's own /close or /quit: done, whatever the code, once the server answered.
      if (info.clean) return end(EXIT_OK, true);
      log.error("error", { message: describeClose(info) });
      return end(EXIT_FAILURE, true);
    }
    if (shortOfCount && ours) {
      const bound = wait ?? DEFAULT_REPLY_WAIT_MS;
      log.error("error", { message: describeCountTimeout(this.#run.received, count, bound) });
      return end(EXIT_FAILURE, true);
    }
    if (isNormalClose(info)) {
      // The server going away (1001) is what --reconnect is for; anything else is the end.
      return end(EXIT_OK, ours || info.code !== GoingAway);
    }
    log.error("error", { message: describeClose(info) });
    return end(EXIT_FAILURE, false);
  }
}
