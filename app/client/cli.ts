/**
 * The client's command line: flags and the URL in, one options object out.
 * The connection settings are computed here, once, under the names
 * `dial()` takes, and handed on as they are.
 *
 * @module
 */

import type { DialOptions } from "../../mod.ts";
import { DEFAULT_DIAL_TIMEOUT_MS } from "../../lib/client/dial.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../../lib/ws/mod.ts";
import { formatDuration } from "../common/duration.ts";
import { UsageError } from "../common/errors.ts";
import {
  COMMON_FLAGS,
  durationFlag,
  type FlagValues,
  intFlag,
  parseFlags,
} from "../common/flags.ts";
import type { Faults } from "../common/faults.ts";
import type { LogFormat } from "../common/log.ts";
import { commonSettings, type ConnectionSettings } from "../common/settings.ts";
import { versionLine } from "../common/version.ts";
import type { Command } from "../common/command.ts";
import { parseHeader } from "./headers.ts";
import { CLIENT_HELP, DEFAULT_URL } from "./help.ts";
import { OUTPUT_MODES, type OutputMode } from "./output.ts";
import { DEFAULT_PROBE_MAX_MS, DEFAULT_PROBE_MIN_MS } from "./probe.ts";
import { DEFAULT_RECONNECT_MAX_DELAY_MS } from "./session.ts";
import { parseWebSocketUrl } from "./url.ts";
import { parseProxy } from "../../lib/client/proxy.ts";
import { type GetEnv, proxyFromEnv } from "../../lib/client/proxy_env.ts";

/** The client's flags, in `node:util` parseArgs form. */
export const CLIENT_FLAGS = {
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
  "cert": { type: "string" },
  "key": { type: "string" },
  "output": { type: "string" },
  "slash": { type: "boolean" },
  "no-slash": { type: "boolean" },
  "reconnect": { type: "boolean" },
  "reconnect-max-delay": { type: "string" },
  "show-pings": { type: "boolean" },
  "probe-idle": { type: "boolean" },
  "probe-min": { type: "string" },
  "probe-max": { type: "string" },
  "no-history": { type: "boolean" },
  "proxy": { type: "string" },
  "no-proxy": { type: "boolean" },
} as const;

type ClientValues = FlagValues<typeof CLIENT_FLAGS>;

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

/** Everything the client program was asked to do. */
export interface ClientProgram {
  /** The server's URL. */
  url: URL;
  /** What `dial()` gets, by its names (the `--ca` file is read when the client starts). */
  dial: DialOptions & ConnectionSettings;
  /** The `--ca` file, or null. */
  caFile: string | null;
  /** The `--cert` and `--key` files (read when the client starts), or null. */
  certFiles: { cert: string; key: string } | null;
  /** `--send` messages, or null to read stdin. */
  send: string[] | null;
  /** Exit after this many messages received (0 = not set). */
  count: number;
  /** `--wait` in ms (Infinity: forever), or null for "until the replies due". */
  wait: number | null;
  /** Send binary messages. */
  binary: boolean;
  /** How received messages are written. */
  output: OutputMode;
  /** Read lines starting with / as commands; null: on a terminal only. */
  slash: boolean | null;
  /** Reconnect with backoff. */
  reconnect: boolean;
  /** Longest delay between reconnect attempts (ms). */
  reconnectMaxDelay: number;
  /** Log each ping and pong. */
  showPings: boolean;
  /** Faults to inject on each connection. */
  faults: Faults;
  /** The log format. */
  logFormat: LogFormat;
  /** `--probe-idle` with its first and last checkpoints (ms), or null. */
  probe: { min: number; max: number } | null;
  /** Keep the interactive history in its file (not with --no-history). */
  history: boolean;
  /** Where the proxy in `dial.proxy` came from: `--proxy` or an environment variable; null without one. */
  proxyFrom: string | null;
}

/** What the command line asks for: text to print and exit 0 (help, version, report), or a client. */
export type ClientCommand = Command<ClientProgram>;

/**
 * Reads the client's command line; a bad one throws {@linkcode UsageError}.
 * `getenv` reads the proxy variables (see {@linkcode proxyFromEnv}); by
 * default this process's environment.
 */
export function parseClientArgs(args: string[], getenv: GetEnv = processEnv): ClientCommand {
  const { values: v, positionals } = parseFlags(args, CLIENT_FLAGS);
  if (v.help) return { type: "print", text: CLIENT_HELP };
  if (v.version) return { type: "print", text: versionLine("client") };
  if (positionals.length > 1) {
    throw new UsageError(`expected one URL, got ${positionals.length}`);
  }
  const common = commonSettings(v, {
    pingInterval: 0,
    pongTimeout: 0,
    maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
    handshakeTimeout: DEFAULT_DIAL_TIMEOUT_MS,
  });
  const url = parseWebSocketUrl(positionals[0] ?? DEFAULT_URL);
  const count = intFlag("--count", v.count, 0, 1);
  const wait = v.wait === undefined
    ? null
    : v.wait === "forever"
    ? Infinity
    : durationFlag("--wait", v.wait, 0);
  const output = outputFlag(v.output);
  if (v.slash && v["no-slash"]) throw new UsageError("--slash and --no-slash contradict");
  const reconnectMaxDelay = durationFlag(
    "--reconnect-max-delay",
    v["reconnect-max-delay"],
    DEFAULT_RECONNECT_MAX_DELAY_MS,
  );
  const headers = (v.header ?? []).map(parseHeader);
  const probe = probeFlags(v);
  if ((v.cert === undefined) !== (v.key === undefined)) {
    throw new UsageError("--cert and --key go together: give both or neither");
  }
  const proxy = proxyFlags(v, url, getenv);
  if (common.printKeepAlive) {
    return { type: "keepalive-report", settings: common.connection, logFormat: common.logFormat };
  }
  const dial = {
    ...common.connection,
    headers,
    origin: v.origin,
    protocols: v.subprotocol,
    insecure: v.insecure ?? false,
    ...(proxy ? { proxy: proxy.url } : {}),
  };
  return {
    type: "run",
    program: {
      url,
      dial,
      caFile: v.ca ?? null,
      certFiles: v.cert !== undefined ? { cert: v.cert, key: v.key! } : null,
      send: v.send ?? null,
      count,
      wait,
      binary: v.binary ?? false,
      output,
      slash: v["no-slash"] ? false : v.slash ?? null,
      reconnect: v.reconnect ?? false,
      reconnectMaxDelay,
      showPings: v["show-pings"] ?? false,
      faults: common.faults,
      logFormat: common.logFormat,
      probe,
      history: !v["no-history"],
      proxyFrom: proxy?.from ?? null,
    },
  };
}

/**
 * The proxy to go through: `--proxy`, else (without `--no-proxy`) the
 * environment's, as curl reads it; null for none. A URL that cannot work is
 * a usage error naming where it came from, without its credentials.
 */
function proxyFlags(
  v: ClientValues,
  url: URL,
  getenv: GetEnv,
): { url: string; from: string } | null {
  if (v.proxy !== undefined && v["no-proxy"]) {
    throw new UsageError("--proxy and --no-proxy contradict");
  }
  const found = v.proxy !== undefined
    ? { name: "--proxy", value: v.proxy }
    : v["no-proxy"]
    ? null
    : proxyFromEnv(url, getenv);
  if (!found) return null;
  try {
    parseProxy(found.value);
  } catch (err) {
    throw new UsageError(`${found.name}: ${(err as Error).message}`);
  }
  return { url: found.value, from: found.name };
}

/**
 * This process's environment; a variable that may not be read (not in
 * `--allow-env`) counts as unset, and is not asked for at a prompt.
 */
function processEnv(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** `--output`, refused as raw when stdout is a terminal. */
function outputFlag(value: string | undefined): OutputMode {
  const output = (value ?? "text") as OutputMode;
  if (!OUTPUT_MODES.includes(output)) {
    throw new UsageError(`--output must be text, json or raw, not "${value}"`);
  }
  if (output === "raw" && Deno.stdout.isTerminal()) {
    throw new UsageError(
      "--output raw writes the server's bytes unchanged, and stdout is a terminal, where " +
        "they could move the cursor or change colours: pipe it, or use --output text or json",
    );
  }
  return output;
}

/** The --probe-idle settings, or null without it; conflicting flags are usage errors. */
function probeFlags(v: ClientValues): { min: number; max: number } | null {
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
  const min = durationFlag("--probe-min", v["probe-min"], DEFAULT_PROBE_MIN_MS);
  const max = durationFlag("--probe-max", v["probe-max"], DEFAULT_PROBE_MAX_MS);
  if (min <= 0) throw new UsageError("--probe-min must be positive");
  if (max < min) {
    throw new UsageError(
      `--probe-max ${formatDuration(max)} must not be below --probe-min ${formatDuration(min)}`,
    );
  }
  return { min, max };
}
