/**
 * The server's command line: flags in, one options object out. The
 * settings `serve()` takes are computed here, once, under the library's
 * own names, and handed on as they are.
 *
 * @module
 */

import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MEMORY_BUDGET,
  DEFAULT_SERVER_PING_INTERVAL_MS,
  DEFAULT_SERVER_PONG_TIMEOUT_MS,
} from "../../lib/server/serve.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../../lib/ws/mod.ts";
import { parseAddr } from "../common/addr.ts";
import { UsageError } from "../common/errors.ts";
import { COMMON_FLAGS, intFlag, parseFlags, sizeFlag } from "../common/flags.ts";
import { commonSettings, type ConnectionSettings } from "../common/settings.ts";
import type { Faults } from "../common/faults.ts";
import type { LogFormat } from "../common/log.ts";
import { versionLine } from "../common/version.ts";
import type { Command } from "../common/command.ts";
import { SERVER_HELP } from "./help.ts";
import { workerCount } from "./supervisor.ts";

/** Where the server listens unless `--addr` says otherwise. */
export const DEFAULT_ADDR = "localhost:8080";

/** The server's flags, in `node:util` parseArgs form. */
export const SERVER_FLAGS = {
  ...COMMON_FLAGS,
  "addr": { type: "string" },
  "max-connections": { type: "string" },
  "memory-budget": { type: "string" },
  "origin": { type: "string", multiple: true },
  "subprotocol": { type: "string", multiple: true },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-client-ca": { type: "string" },
  "workers": { type: "string" },
  // Internal: set by the supervisor on the processes it starts.
  "worker-index": { type: "string" },
} as const;

/** The settings `serve()` takes, by its names: the one map computed from the flags. */
export interface ServerSettings extends ConnectionSettings {
  /** Host to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** Upgrades past this many open connections get 503; 0 means no limit. */
  maxConnections: number;
  /** The server-wide memory budget in bytes. */
  memoryBudget: number;
  /** Allowed `Origin` host patterns besides the request's own host. */
  origins: string[];
  /** Subprotocols the server agrees to, in preference order. */
  protocols: string[];
}

/** Everything the server program was asked to do. */
export interface ServerProgram {
  /** What `serve()` gets. */
  settings: ServerSettings;
  /** `--addr` as given, for messages. */
  addr: string;
  /** The PEM files of `--tls-cert`, `--tls-key` and `--tls-client-ca`, read when the server starts. */
  tlsFiles: { cert: string; key: string; clientCa: string | null } | null;
  /** Faults to inject on every connection. */
  faults: Faults;
  /** The log format. */
  logFormat: LogFormat;
  /** How many processes (1: no supervisor). */
  workers: number;
  /** `--workers` as given, for the warning where workers are not supported. */
  workersFlag: string | undefined;
  /** This process's index when it is a worker; null otherwise. */
  workerIndex: number | null;
  /** The server's own arguments, for the workers. */
  args: string[];
}

/** What the command line asks for: text to print and exit 0 (help, version, report), or a server. */
export type ServerCommand = Command<ServerProgram>;

/** Reads the server's command line; a bad one throws {@linkcode UsageError}. */
export function parseServerArgs(args: string[]): ServerCommand {
  const { values: v, positionals } = parseFlags(args, SERVER_FLAGS);
  if (v.help) return { type: "print", text: SERVER_HELP };
  if (v.version) return { type: "print", text: versionLine("server") };
  if (positionals.length) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`);
  }
  const common = commonSettings(v, {
    pingInterval: DEFAULT_SERVER_PING_INTERVAL_MS,
    pongTimeout: DEFAULT_SERVER_PONG_TIMEOUT_MS,
    maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
    handshakeTimeout: DEFAULT_HANDSHAKE_TIMEOUT_MS,
  });
  const addr = v.addr ?? DEFAULT_ADDR;
  const { hostname, port } = parseAddr(addr);
  const maxConnections = intFlag("--max-connections", v["max-connections"], 0);
  const memoryBudget = sizeFlag("--memory-budget", v["memory-budget"], DEFAULT_MEMORY_BUDGET);
  if (Boolean(v["tls-cert"]) !== Boolean(v["tls-key"])) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  if (v["tls-client-ca"] !== undefined && !v["tls-cert"]) {
    throw new UsageError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  const workers = workerCount(v.workers);
  if (workers === null) {
    throw new UsageError(`--workers takes a number from 1 to 256 or auto, got "${v.workers}"`);
  }
  if (v["tls-client-ca"] !== undefined && workers > 1) {
    throw new UsageError("--tls-client-ca cannot be combined with --workers: run one process");
  }
  const workerIndex = v["worker-index"] === undefined
    ? null
    : intFlag("--worker-index", v["worker-index"], 0);
  if (common.printKeepAlive) {
    return { type: "keepalive-report", settings: common.connection, logFormat: common.logFormat };
  }
  const settings: ServerSettings = {
    ...common.connection,
    hostname,
    port,
    maxConnections,
    memoryBudget,
    origins: v.origin ?? [],
    protocols: v.subprotocol ?? [],
  };
  return {
    type: "run",
    program: {
      settings,
      addr,
      tlsFiles: v["tls-cert"]
        ? { cert: v["tls-cert"], key: v["tls-key"]!, clientCa: v["tls-client-ca"] ?? null }
        : null,
      faults: common.faults,
      logFormat: common.logFormat,
      workers,
      workersFlag: v.workers,
      workerIndex,
      args,
    },
  };
}
