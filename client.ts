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
} from "./app/common/flags.ts";
import { DEFAULT_RECONNECT_MAX_DELAY_MS, runClient } from "./app/client/session.ts";
import {
  DEFAULT_PROBE_MAX_MS,
  DEFAULT_PROBE_MIN_MS,
  PROBE_PONG_WAIT_MS,
  runProbe,
} from "./app/client/probe.ts";
import { formatDuration } from "./app/common/duration.ts";
import { DEFAULT_DIAL_TIMEOUT_MS } from "./lib/dial.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "./lib/ws/mod.ts";
import { kernelKeepAliveDefaults, sockoptUnavailableReason } from "./lib/tcp/mod.ts";
import { parseWebSocketUrl } from "./app/client/url.ts";
import { UsageError } from "./app/common/errors.ts";
import { fallbackWarning, keepAliveConfig } from "./app/common/keepalive.ts";
import { readLines } from "./app/common/lines.ts";
import { createLogger, writeStderr } from "./app/common/log.ts";
import { parseHeader } from "./app/client/headers.ts";
import { createOutput, OUTPUT_MODES, type OutputMode } from "./app/client/output.ts";
import { processTerminal, Terminal } from "./app/client/terminal.ts";
import { versionLine } from "./app/common/version.ts";

const DEFAULT_URL = "ws://localhost:8080/echo";
const PONG_WAIT = formatDuration(PROBE_PONG_WAIT_MS);
const PROBE_MIN = formatDuration(DEFAULT_PROBE_MIN_MS);
const PROBE_MAX = formatDuration(DEFAULT_PROBE_MAX_MS);

const HELP = `keepalive-ws client: a WebSocket client with Go's TCP keepalive defaults.

Usage: deno task client [flags] [URL]        (URL defaults to ${DEFAULT_URL})

URL: ws://HOST[:PORT]/PATH or wss://…; without a scheme it is ws:// (localhost:8080).

Lines on stdin go out as text messages; each message received is printed as one
line on stdout. On stdin EOF the client waits for the replies still due (bounded
by --wait), closes with 1000 and exits. Logs go to stderr.

On a terminal: a "> " prompt with line editing and history (arrows, Home/End,
Ctrl-A/E/U/K/W), messages printed above the line being typed as "< text", with
control characters shown as escapes (\n, \e, \x01) and binary messages as
"[binary 5 B] aGVsbG8=", in colour unless NO_COLOR is set; slash commands
(/ping [data], /close [code [reason]], /quit, /help; "//" sends one "/").
On a pipe: one message per line, newline and CR in a text message written as
\n and \r, binary messages as base64 (see --output).

Messages:
  --send MSG               send MSG instead of reading stdin (repeatable; sent again
                           on each connection with --reconnect)
  --count N                exit after N messages received (fewer within --wait: exit 1)
  --wait D|forever         stay connected D after the last send, or until the server
                           closes or Ctrl-C (default: until the replies due arrive,
                           at most 10s)
  --binary                 send binary messages instead of text
  --output text|json|raw   how received messages are written: text (default, above);
                           json: {"type":"text"|"binary","data":…} per line, binary
                           data in base64; raw: the bytes as they came, then a
                           newline (not on a terminal)
  --slash, --no-slash      read lines starting with / as commands (default: on a
                           terminal only)

Connection:
  -H, --header "K: V"      an extra request header (repeatable)
  --origin ORIGIN          the Origin header to send
  --subprotocol NAME       a subprotocol to offer (repeatable)
  --ca FILE                trust this PEM CA certificate for wss:// (or a self-signed
                           server certificate, even one marked CA:TRUE)
  -k, --insecure           wss:// without checking the server's certificate (expired,
                           self-signed, another host): anyone on the path can read
                           and change the traffic
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
Exit codes: 0 /close, /quit, or closed with 1000 or 1001; 1 refused, failed, timed
out or closed abnormally (the last line on stderr names the cause); 2 usage error.`;

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
  "insecure": { type: "boolean", short: "k" },
  "output": { type: "string" },
  "slash": { type: "boolean" },
  "no-slash": { type: "boolean" },
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
  "output",
  "slash",
  "reconnect",
  "show-pings",
  "ping-interval",
  "pong-timeout",
  "no-pong",
  "freeze-after",
  "drop-after",
  "drop-mode",
] as const;

async function main(): Promise<number> {
  const { values: v, positionals } = parseFlags(Deno.args, CLIENT_FLAGS, true);
  if (v.help) {
    console.log(HELP);
    return EXIT_OK;
  }
  if (v.version) {
    console.log(versionLine("client"));
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
  const waitMs = v.wait === undefined
    ? null
    : v.wait === "forever"
    ? Infinity
    : durationFlag("--wait", v.wait, 0);
  const output = (v.output ?? "text") as OutputMode;
  if (!OUTPUT_MODES.includes(output)) {
    throw new UsageError(`--output must be text, json or raw, not "${v.output}"`);
  }
  const stdoutTty = Deno.stdout.isTerminal();
  if (output === "raw" && stdoutTty) {
    throw new UsageError(
      "--output raw writes the server's bytes unchanged, and stdout is a terminal, where " +
        "they could move the cursor or change colours: pipe it, or use --output text or json",
    );
  }
  if (v.slash && v["no-slash"]) throw new UsageError("--slash and --no-slash contradict");
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
  const interactive = Deno.stdin.isTerminal() && stdoutTty && !v.send && probe === null;
  const interrupted = Promise.withResolvers<void>();
  const term = interactive
    ? new Terminal(
      processTerminal(),
      Deno.noColor ? "> " : "\x1b[1;36m>\x1b[0m ",
      () => interrupted.resolve(),
    )
    : null;
  const stderrTty = Deno.stderr.isTerminal();
  const log = createLogger(
    common.logFormat,
    term && stderrTty ? (line) => term.above(line.replace(/\n$/, ""), writeStderr) : writeStderr,
  );
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

  if (v.insecure && url.protocol === "wss:") {
    log.warn("insecure", {
      message: "-k: the server's certificate is not checked; anyone on the path can read " +
        "and change this connection",
    });
  }
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
    insecure: v.insecure ?? false,
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
  const colour = stdoutTty && !Deno.noColor;
  const out = createOutput(output, stdoutTty, colour);
  const dim = (text: string) => colour ? `\x1b[2m${text}\x1b[22m` : text;
  const slash = v["no-slash"] ? false : v.slash ?? interactive;
  try {
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
      slash,
      caFile: v.ca ?? null,
      logger: log,
    }, {
      lines: v.send ? null : term ? term.lines() : readLines(Deno.stdin.readable),
      print(message) {
        const line = out.line(message);
        if (term && line !== null) term.above(line);
        else writeStdout(out.format(message));
      },
      notice(text, otherwise = "text") {
        if (stdoutTty) {
          const shown = text.split("\n").map((l) => dim(`· ${l}`)).join("\n");
          if (term) term.above(shown);
          else writeStdout(new TextEncoder().encode(shown + "\n"));
        } else if (otherwise === "text") writeStderr(text + "\n");
        else if (otherwise !== "none") log.log(otherwise.level, otherwise.event, otherwise.fields);
      },
      ready: () => term?.show(),
      done: () => term?.hide(),
      interrupted: interrupted.promise,
    });
  } finally {
    // Raw mode off before the program exits.
    term?.close();
  }
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

/** Writes all of `bytes` to stdout. */
function writeStdout(bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

if (import.meta.main) runMain("client", main);
