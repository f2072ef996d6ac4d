/**
 * keepalive-ws client: a command-line WebSocket client whose TCP keepalive
 * matches Go's defaults and is reported as it is really in force.
 *
 * Run `deno task client --help` for the flags.
 *
 * @module
 */

import {
  COMMON_FLAGS,
  commonHelp,
  commonSettings,
  durationFlag,
  EXIT_OK,
  fileErrorText,
  intFlag,
  parseFlags,
  printKeepAlive,
  runMain,
} from "./app/cli.ts";
import { DEFAULT_RECONNECT_MAX_DELAY_MS, runClient } from "./app/session.ts";
import {
  DEFAULT_PROBE_MAX_MS,
  DEFAULT_PROBE_MIN_MS,
  PROBE_PONG_WAIT_MS,
  runProbe,
} from "./app/probe.ts";
import { formatDuration } from "./app/duration.ts";
import {
  DEFAULT_DIAL_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_SIZE,
  kernelKeepAliveDefaults,
  sockoptUnavailableReason,
} from "./mod.ts";
import { parseWebSocketUrl } from "./app/url.ts";
import { UsageError } from "./app/errors.ts";
import { fallbackWarning, keepAliveConfig } from "./app/keepalive.ts";
import { readLines } from "./app/lines.ts";
import { createLogger } from "./app/log.ts";

const DEFAULT_URL = "ws://localhost:8080/echo";
const PONG_WAIT = formatDuration(PROBE_PONG_WAIT_MS);
const PROBE_MIN = formatDuration(DEFAULT_PROBE_MIN_MS);
const PROBE_MAX = formatDuration(DEFAULT_PROBE_MAX_MS);

const HELP = `keepalive-ws client: a WebSocket client with Go's TCP keepalive defaults.

Usage: deno task client [flags] [URL]        (URL defaults to ${DEFAULT_URL})

Lines on stdin go out as text messages; each message received is printed as one
line on stdout (binary messages as base64). On stdin EOF the client waits for the
replies still due (bounded by --wait), closes with 1000 and exits. On a terminal
it shows a "> " prompt and prints replies as "< text", in colour unless NO_COLOR
is set; on a pipe stdout carries the messages only, and logs go to stderr.

Messages:
  --send MSG               send MSG instead of reading stdin (repeatable; sent again
                           on each connection with --reconnect)
  --count N                exit after N messages received (fewer within --wait: exit 1)
  --wait D                 stay connected D after the last send (default: until the
                           replies due arrive, at most 10s)
  --binary                 send binary messages instead of text

Connection:
  -H, --header "K: V"      an extra request header (repeatable)
  --origin ORIGIN          the Origin header to send
  --subprotocol NAME       a subprotocol to offer (repeatable)
  --ca FILE                trust this PEM CA certificate for wss://
  --reconnect              after a failed connect, an abnormal close or the server
                           going away (1001), reconnect with exponential backoff and
                           jitter (from 0.5s); stops on the client's own close, a
                           close 1000 from the server, or Ctrl-C
  --reconnect-max-delay D  longest delay between attempts (default 30s)

Diagnosing:
  --show-pings             log each ping and pong ("ping" and "pong" events; a pong
                           that answers our ping carries its round trip, rtt_ms)
  --probe-idle             find the idle timeout of the path: hold one silent connection
                           per checkpoint (heartbeat off, keepalive as given; add
                           --no-keepalive for a pure test), ping each at its checkpoint
                           and wait ${PONG_WAIT} for the pong. Prints a recommendation,
                           then "idle timeout between Ns and Ms (cause)" or
                           "no idle timeout up to Ms"
  --probe-min D            first checkpoint; they double up to --probe-max (default ${PROBE_MIN})
  --probe-max D            last checkpoint (default ${PROBE_MAX})

${commonHelp({ ping: "off", pong: "off" })}

Signals: Ctrl-C (SIGINT) or SIGTERM closes with 1000 and exits.
Exit codes: 0 closed with 1000 or 1001; 1 refused, failed, timed out or closed
abnormally (the last line on stderr names the cause); 2 usage error.`;

const CLIENT_FLAGS = {
  ...COMMON_FLAGS,
  "send": { type: "string", multiple: true },
  "count": { type: "string" },
  "wait": { type: "string" },
  "binary": { type: "boolean" },
  "header": { type: "string", short: "H", multiple: true },
  "origin": { type: "string" },
  "subprotocol": { type: "string", multiple: true },
  "ca": { type: "string" },
  "reconnect": { type: "boolean" },
  "reconnect-max-delay": { type: "string" },
  "show-pings": { type: "boolean" },
  "probe-idle": { type: "boolean" },
  "probe-min": { type: "string" },
  "probe-max": { type: "string" },
} as const;

/** Flags that make no sense with --probe-idle, which holds silent connections of its own. */
const NOT_WITH_PROBE = [
  "send",
  "count",
  "wait",
  "binary",
  "reconnect",
  "show-pings",
  "ping-interval",
  "pong-timeout",
  "no-pong",
  "freeze-after",
  "drop-after",
  "drop-mode",
] as const;

function parseHeader(text: string): [string, string] {
  const i = text.indexOf(":");
  if (i <= 0) {
    throw new UsageError(`--header takes "Name: value", got "${text}"`);
  }
  return [text.slice(0, i).trim(), text.slice(i + 1).trim()];
}

async function* entered(lines: AsyncIterable<string>, term: Terminal): AsyncIterable<string> {
  for await (const line of lines) {
    term.entered();
    yield line;
  }
}

async function main(): Promise<number> {
  const { values: v, positionals } = parseFlags(Deno.args, CLIENT_FLAGS, true);
  if (v.help) {
    console.log(HELP);
    return EXIT_OK;
  }
  if (positionals.length > 1) {
    throw new UsageError(`expected one URL, got ${positionals.length}`);
  }
  const common = commonSettings(v, {
    pingIntervalMs: 0,
    pongTimeoutMs: 0,
    maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
    handshakeTimeoutMs: DEFAULT_DIAL_TIMEOUT_MS,
  });
  const url = parseWebSocketUrl(positionals[0] ?? DEFAULT_URL);
  const count = intFlag("--count", v.count, 0, 1);
  const waitMs = v.wait === undefined ? null : durationFlag("--wait", v.wait, 0);
  const reconnectMaxDelayMs = durationFlag(
    "--reconnect-max-delay",
    v["reconnect-max-delay"],
    DEFAULT_RECONNECT_MAX_DELAY_MS,
  );
  const headers = (v.header ?? []).map(parseHeader);
  const probe = probeFlags(v);
  if (v["print-keepalive"]) {
    printKeepAlive(common, "client");
    return EXIT_OK;
  }
  let caCerts: string[] | undefined;
  if (v.ca) {
    try {
      caCerts = [await Deno.readTextFile(v.ca)];
    } catch (err) {
      throw new Error(`--ca: cannot read ${v.ca}: ${fileErrorText(err)}`);
    }
  }
  const log = createLogger(common.logFormat);
  const unavailable = sockoptUnavailableReason();
  if (unavailable) {
    log.warn("keepalive", {
      message: fallbackWarning(
        common.keepAlive,
        kernelKeepAliveDefaults(),
        unavailable,
      ),
    });
  }

  const interrupted = Promise.withResolvers<void>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => interrupted.resolve());
  }
  const dialOptions = {
    keepAlive: keepAliveConfig(common.keepAlive),
    userTimeout: common.userTimeoutMs || undefined,
    headers,
    origin: v.origin,
    protocols: v.subprotocol,
    caCerts,
    handshakeTimeout: common.handshakeTimeoutMs,
    maxMessageSize: common.maxMessageSize,
    compression: common.compression,
  };
  if (probe) {
    return await runProbe({
      url,
      dial: dialOptions,
      ...probe,
      logger: log,
      print: (line) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n")),
      interrupted: interrupted.promise,
    });
  }
  const term = new Terminal(
    Deno.stdin.isTerminal() && !v.send,
    Deno.stdout.isTerminal() && !Deno.noColor,
  );
  return await runClient({
    url,
    dial: {
      ...dialOptions,
      pingInterval: common.pingIntervalMs,
      pongTimeout: common.pongTimeoutMs,
      stallTimeout: common.stallTimeoutMs,
      autoPong: !common.faults.noPong,
    },
    send: v.send ?? [],
    count,
    waitMs,
    binary: v.binary ?? false,
    reconnect: v.reconnect ?? false,
    reconnectMaxDelayMs,
    showPings: v["show-pings"] ?? false,
    faults: common.faults,
    logger: log,
  }, {
    lines: v.send ? null : entered(readLines(Deno.stdin.readable), term),
    print: (text) => term.print(text),
    ready: () => term.prompt(),
    done: () => term.clear(),
    interrupted: interrupted.promise,
  });
}

/** The --probe-idle settings, or null without it; conflicting flags are usage errors. */
function probeFlags(
  v: ReturnType<typeof parseFlags<typeof CLIENT_FLAGS>>["values"],
): { minMs: number; maxMs: number } | null {
  if (!v["probe-idle"]) {
    for (const flag of ["probe-min", "probe-max"] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} goes with --probe-idle`);
    }
    return null;
  }
  const clash = NOT_WITH_PROBE.filter((flag) => v[flag] !== undefined);
  if (clash.length > 0) {
    throw new UsageError(
      `--probe-idle cannot be combined with ${
        clash.map((f) => `--${f}`).join(", ")
      }: it holds silent connections of its own, with the heartbeat off`,
    );
  }
  const minMs = durationFlag("--probe-min", v["probe-min"], DEFAULT_PROBE_MIN_MS);
  const maxMs = durationFlag("--probe-max", v["probe-max"], DEFAULT_PROBE_MAX_MS);
  if (minMs <= 0) throw new UsageError("--probe-min must be positive");
  if (maxMs < minMs) {
    throw new UsageError(
      `--probe-max ${formatDuration(maxMs)} must not be below --probe-min ${formatDuration(minMs)}`,
    );
  }
  return { minMs, maxMs };
}

/**
 * stdout as a person or a program sees it. On a pipe: one line per message,
 * nothing else. On a terminal: a `> ` prompt, received messages as `< text`,
 * in colour when stdout is a terminal too and NO_COLOR is not set.
 */
class Terminal {
  #interactive: boolean;
  #colour: boolean;
  #prompting = false;
  #encoder = new TextEncoder();

  constructor(interactive: boolean, colour: boolean) {
    this.#interactive = interactive;
    this.#colour = interactive && colour;
  }

  /** Prints one received message as one line. */
  print(text: string): void {
    if (!this.#interactive) return this.#write(text + "\n");
    const line = this.#colour ? `\x1b[32m< ${text}\x1b[0m` : `< ${text}`;
    const wasPrompting = this.#prompting;
    this.clear();
    this.#write(line + "\n");
    if (wasPrompting) this.prompt();
  }

  /** Shows the prompt (terminal only). */
  prompt(): void {
    if (!this.#interactive || this.#prompting) return;
    this.#prompting = true;
    this.#write(this.#colour ? "\x1b[1;36m>\x1b[0m " : "> ");
  }

  /** Notes that the user pressed Enter: the terminal itself moved past the prompt. */
  entered(): void {
    this.#prompting = false;
  }

  /** Erases the prompt line, so what follows starts at column 0. */
  clear(): void {
    if (!this.#prompting) return;
    this.#prompting = false;
    this.#write("\r\x1b[2K");
  }

  #write(text: string): void {
    const bytes = this.#encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}

if (import.meta.main) runMain("client", main);
