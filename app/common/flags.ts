/**
 * What both programs' command lines share: the keepalive, heartbeat and log
 * flags, value parsing with clear errors, `--print-keepalive`, and the rule
 * that a user sees one sentence and an exit code, never a stack trace.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { DEFAULT_STALL_TIMEOUT_MS } from "../../lib/ws/mod.ts";
import type { KeepAlivePolicy } from "../../mod.ts";
import { kernelKeepAliveDefaults } from "../../lib/tcp/mod.ts";
import { formatKeepAliveReport, keepAliveFromFlags, keepAliveReport } from "./keepalive.ts";
import { LOG_FORMATS, type LogFormat, writeStderr } from "./log.ts";
import type { Faults } from "./faults.ts";

/** Exit code for success. */
export const EXIT_OK = 0;
/** Exit code for a failure: refused, timed out, closed abnormally. */
export const EXIT_FAILURE = 1;
/** Exit code for a usage error: unknown flag, bad value, bad URL. */
export const EXIT_USAGE = 2;

/** Flags that both programs take, in `node:util` parseArgs form. */
export const COMMON_FLAGS = {
  "keepalive": { type: "string" },
  "keepalive-idle": { type: "string" },
  "keepalive-interval": { type: "string" },
  "keepalive-count": { type: "string" },
  "no-keepalive": { type: "boolean" },
  "print-keepalive": { type: "boolean" },
  "tcp-user-timeout": { type: "string" },
  "ping-interval": { type: "string" },
  "pong-timeout": { type: "string" },
  "stall-timeout": { type: "string" },
  "max-message-size": { type: "string" },
  "handshake-timeout": { type: "string" },
  "compression": { type: "boolean" },
  "log-format": { type: "string" },
  "no-pong": { type: "boolean" },
  "freeze-after": { type: "string" },
  "drop-after": { type: "string" },
  "drop-mode": { type: "string" },
  "help": { type: "boolean", short: "h" },
  "version": { type: "boolean", short: "V" },
} as const satisfies ParseArgsConfig["options"];

/** Help text for the flags in {@linkcode COMMON_FLAGS}. */
export function commonHelp(defaults: { ping: string; pong: string }): string {
  return `TCP keepalive (Go's defaults: on, idle 15s, interval 15s, count 9):
  --keepalive D            Go's Dialer.KeepAlive: 0 = defaults, >0 = idle only,
                           <0 = off (e.g. --keepalive 30s gives 30s/15s/9)
  --keepalive-idle D       TCP_KEEPIDLE   (0 = default 15s, <0 = leave the OS value)
  --keepalive-interval D   TCP_KEEPINTVL  (0 = default 15s, <0 = leave the OS value)
  --keepalive-count N      TCP_KEEPCNT    (0 = default 9,   <0 = leave the OS value)
  --no-keepalive           turn SO_KEEPALIVE off
  --print-keepalive        print the resolved policy, the kernel's values, Go's
                           defaults and the worst-case detection time; then exit
  --tcp-user-timeout D     TCP_USER_TIMEOUT: fail when sent data stays unacknowledged
                           this long (default: off, the OS value)

WebSocket:
  --ping-interval D        send a ping this often; 0 = off (default ${defaults.ping})
  --pong-timeout D         close (1011 "pong timeout") when nothing arrives for D; 0 = off
                           (default ${defaults.pong}); must be longer than --ping-interval
  --stall-timeout D        close (1008, send-overflow) when the peer reads nothing of ours
                           for D while we have data to send; 0 = never (default 30s)
  --max-message-size B     largest message accepted, in bytes; KiB/MiB suffixes
                           allowed (default 16MiB); larger ones get close 1009
  --handshake-timeout D    bound on the opening handshake (default 10s)
  --compression            permessage-deflate (RFC 7692): the client offers it, the
                           server agrees when offered (default off; costs CPU and, with
                           context takeover, ~300 KiB of zlib memory per connection)

Fault injection (to see how your peer copes; each is logged as a "fault" event):
  --no-pong                do not answer pings (a peer whose program is stuck)
  --freeze-after D         D after opening, stop reading and writing but keep the
                           socket open (a hung program: its kernel still answers TCP)
  --drop-after D           D after opening, end TCP without a close frame
  --drop-mode fin|rst      how --drop-after ends TCP: fin (default, as a crash would)
                           or rst (a reset, as a middlebox or a lost host would)

Output:
  --log-format F           text (logfmt, default) or json: one event per line on stderr
  -h, --help               show this help
  -V, --version            print the version and exit

Durations use Go's syntax: 500ms, 15s, 1m30s. A bare 0 is allowed.`;
}

/** Parses `args` against `flags`; unknown flags and missing values become {@linkcode UsageError}. */
export function parseFlags<T extends ParseArgsConfig["options"]>(
  args: string[],
  flags: T,
  allowPositionals: boolean,
) {
  // Go's rules give negative values a meaning (`--keepalive-count -1` leaves the
  // OS value), but parseArgs reads "-1" as a flag: join such values to their flag.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : "";
    if (flags?.[name]?.type === "string" && /^-\d/.test(args[i + 1] ?? "")) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else {
      joined.push(args[i]);
    }
  }
  try {
    return parseArgs({ args: joined, options: flags, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(
      err instanceof Error ? err.message.replace(/\. To specify.*$/s, "") : String(err),
    );
  }
}

/** The values of {@linkcode COMMON_FLAGS}, as parseArgs returns them. */
export type CommonValues = {
  [K in keyof typeof COMMON_FLAGS]?: (typeof COMMON_FLAGS)[K]["type"] extends "boolean" ? boolean
    : string;
};

/** The settings that {@linkcode COMMON_FLAGS} resolve to. */
export interface CommonSettings {
  /** The keepalive policy. */
  keepAlive: KeepAlivePolicy;
  /** TCP_USER_TIMEOUT in ms (0 = the OS value). */
  userTimeoutMs: number;
  /** Heartbeat ping period in ms (0 = off). */
  pingIntervalMs: number;
  /** Pong timeout in ms (0 = off). */
  pongTimeoutMs: number;
  /** Stall timeout in ms (0 = off). */
  stallTimeoutMs: number;
  /** permessage-deflate on (offered by the client, accepted by the server). */
  compression: boolean;
  /** Largest message in bytes. */
  maxMessageSize: number;
  /** Handshake bound in ms. */
  handshakeTimeoutMs: number;
  /** The log format. */
  logFormat: LogFormat;
  /** Faults to inject on every connection. */
  faults: Faults;
}

/** Resolves the common flags, with the program's own heartbeat defaults. */
export function commonSettings(
  v: CommonValues,
  defaults: {
    pingIntervalMs: number;
    pongTimeoutMs: number;
    maxMessageSize: number;
    handshakeTimeoutMs: number;
  },
): CommonSettings {
  const logFormat = (v["log-format"] ?? "text") as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) {
    throw new UsageError(
      `--log-format must be text or json, not "${v["log-format"]}"`,
    );
  }
  const pingIntervalMs = durationFlag(
    "--ping-interval",
    v["ping-interval"],
    defaults.pingIntervalMs,
  );
  const pongTimeoutMs = durationFlag("--pong-timeout", v["pong-timeout"], defaults.pongTimeoutMs);
  if (pingIntervalMs > 0 && pongTimeoutMs > 0 && pongTimeoutMs <= pingIntervalMs) {
    const given = (flag: string, ms: number) =>
      `${flag} ${formatDuration(ms)}${
        v[flag.slice(2) as keyof CommonValues] === undefined ? " (the default)" : ""
      }`;
    throw new UsageError(
      `${given("--pong-timeout", pongTimeoutMs)} must be longer than ${
        given("--ping-interval", pingIntervalMs)
      }: the pong to a ping must have time to arrive`,
    );
  }
  return {
    keepAlive: keepAliveFromFlags({
      keepalive: v.keepalive,
      idle: v["keepalive-idle"],
      interval: v["keepalive-interval"],
      count: v["keepalive-count"],
      noKeepalive: v["no-keepalive"],
    }),
    userTimeoutMs: durationFlag("--tcp-user-timeout", v["tcp-user-timeout"], 0),
    pingIntervalMs,
    pongTimeoutMs,
    stallTimeoutMs: durationFlag("--stall-timeout", v["stall-timeout"], DEFAULT_STALL_TIMEOUT_MS),
    compression: v.compression ?? false,
    maxMessageSize: sizeFlag(
      "--max-message-size",
      v["max-message-size"],
      defaults.maxMessageSize,
    ),
    handshakeTimeoutMs: positive(
      "--handshake-timeout",
      durationFlag("--handshake-timeout", v["handshake-timeout"], defaults.handshakeTimeoutMs),
    ),
    logFormat,
    faults: faultsFromFlags(v),
  };
}

/** Resolves the fault-injection flags. */
function faultsFromFlags(v: CommonValues): Faults {
  const mode = v["drop-mode"] ?? "fin";
  if (mode !== "fin" && mode !== "rst") {
    throw new UsageError(`--drop-mode must be fin or rst, not "${mode}"`);
  }
  if (v["drop-mode"] !== undefined && v["drop-after"] === undefined) {
    throw new UsageError("--drop-mode says how --drop-after ends TCP: give --drop-after too");
  }
  return {
    noPong: v["no-pong"] ?? false,
    freezeAfterMs: v["freeze-after"] === undefined
      ? null
      : durationFlag("--freeze-after", v["freeze-after"], 0),
    dropAfterMs: v["drop-after"] === undefined
      ? null
      : durationFlag("--drop-after", v["drop-after"], 0),
    dropMode: mode,
  };
}

/** `ms`, or a {@linkcode UsageError} when it is 0: a bound that must exist. */
function positive(name: string, ms: number): number {
  if (ms <= 0) throw new UsageError(`${name} must be positive: a handshake needs a bound`);
  return ms;
}

/** Parses a non-negative duration flag to ms; `fallback` when absent. */
export function durationFlag(
  name: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (err) {
    throw new UsageError(
      `${name}: ${err instanceof Error ? err.message : err}`,
    );
  }
  if (ms < 0) {
    throw new UsageError(`${name} must not be negative, got "${value}"`);
  }
  return Math.ceil(ms);
}

/** Parses a whole-number flag within [min, max]; `fallback` when absent. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`${name} takes a whole number, got "${value}"`);
  }
  const n = Number(value);
  if (n < min && max === Number.MAX_SAFE_INTEGER) {
    throw new UsageError(`${name} must be at least ${min}, got ${n}`);
  }
  if (n < min || n > max) {
    throw new UsageError(`${name} must be between ${min} and ${max}, got ${n}`);
  }
  return n;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  kb: 1000,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  gib: 1024 ** 3,
};

/** Parses a byte size such as `65536`, `64KiB` or `16MiB`; `fallback` when absent. */
export function sizeFlag(
  name: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(
      `${name} takes a size in bytes such as 65536, 64KiB or 16MiB, got "${value}"`,
    );
  }
  const n = Number(m[1]) * unit;
  if (n < 1 || !Number.isSafeInteger(n)) {
    throw new UsageError(`${name} must be at least 1 byte, got "${value}"`);
  }
  return n;
}

/** The message of a file error without Deno's trailing `: readfile '/path'` (the caller names the file). */
export function fileErrorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/: [a-z]+ '[^']*'$/, "");
}

/** Prints what `--print-keepalive` shows (keepalive and heartbeat), in the chosen format, to stdout. */
export function printKeepAlive(
  settings: Pick<CommonSettings, "keepAlive" | "pingIntervalMs" | "pongTimeoutMs" | "logFormat">,
  program: string,
): void {
  const input = {
    policy: settings.keepAlive,
    kernel: kernelKeepAliveDefaults(),
    heartbeat: { pingIntervalMs: settings.pingIntervalMs, pongTimeoutMs: settings.pongTimeoutMs },
  };
  const text = settings.logFormat === "json"
    ? JSON.stringify({ program, ...keepAliveReport(input) }) + "\n"
    : formatKeepAliveReport(input) + "\n";
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}

/**
 * How a user starts `program` again: `deno task client`, or the binary's
 * own name when it was built with `deno compile`.
 */
export function commandName(program: string): string {
  const exe = Deno.execPath().split(/[\\/]/).pop() ?? "";
  return /^deno(\.exe)?$/.test(exe) ? `deno task ${program}` : exe;
}

/**
 * Runs a program's main function: a {@linkcode UsageError} prints one line and
 * a hint and exits 2; any other error prints one line and exits 1.
 */
export async function runMain(
  program: string,
  main: () => Promise<number>,
): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (err instanceof UsageError) {
      writeStderr(
        `${program}: ${err.message}\nRun '${commandName(program)} --help' for usage.\n`,
      );
      code = EXIT_USAGE;
    } else {
      writeStderr(
        `${program}: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      code = EXIT_FAILURE;
    }
  }
  Deno.exit(code);
}
