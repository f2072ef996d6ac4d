/**
 * keepalive-ws server: a WebSocket echo server whose TCP keepalive matches
 * Go's defaults and is reported as it is really in force.
 *
 * Run `deno task server --help` for the flags.
 *
 * @module
 */

import {
  COMMON_FLAGS,
  commonHelp,
  commonSettings,
  EXIT_OK,
  fileErrorText,
  intFlag,
  parseFlags,
  printKeepAlive,
  runMain,
  sizeFlag,
} from "./app/common/flags.ts";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MEMORY_BUDGET,
  DEFAULT_SERVER_PING_INTERVAL_MS,
  DEFAULT_SERVER_PONG_TIMEOUT_MS,
} from "./lib/serve.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "./lib/ws/mod.ts";
import { kernelKeepAliveDefaults, sockoptUnavailableReason } from "./lib/tcp/mod.ts";
import { parseAddr } from "./app/common/addr.ts";
import { formatDuration } from "./app/common/duration.ts";
import { startServer } from "./app/server/echo.ts";
import { UsageError } from "./app/common/errors.ts";
import { fallbackWarning } from "./app/common/keepalive.ts";
import { createLogger } from "./app/common/log.ts";
import { versionLine } from "./app/common/version.ts";
import {
  reusePortSupported,
  superviseWorkers,
  withoutFlag,
  WorkerChannel,
  workerCount,
} from "./app/server/supervisor.ts";

const HELP = `keepalive-ws server: a WebSocket echo server with Go's TCP keepalive defaults.

Usage: deno task server [flags]

Endpoints: /echo (WebSocket echo), / (browser console), /healthz, /metrics (Prometheus)

Server:
  --addr HOST:PORT         address to listen on (default localhost:8080; port 0 picks one)
  --max-connections N      upgrades past N open connections get 503 (default 0 = no limit)
  --memory-budget SIZE     bytes all connections together may hold in buffers, partial
                           messages and send queues; past it the biggest holders are
                           closed with 1013 (default 256MiB; KiB/MiB/GiB suffixes)
  --origin PATTERN         also allow this Origin host pattern, e.g. *.example.com
                           (repeatable; by default only the request's own host);
                           null allows "Origin: null" (file:// pages, sandboxed iframes)
  --subprotocol NAME       a subprotocol to agree to (repeatable)
  --tls-cert FILE          PEM certificate: serve wss:// (with --tls-key)
  --tls-key FILE           PEM private key
  --workers N|auto         run N processes sharing the port with SO_REUSEPORT (Linux);
                           auto = one per core (default 1). /metrics adds up all workers

${
  commonHelp({
    ping: formatDuration(DEFAULT_SERVER_PING_INTERVAL_MS),
    pong: formatDuration(DEFAULT_SERVER_PONG_TIMEOUT_MS),
  })
}

Signals: SIGINT or SIGTERM stops accepting, sends close 1001 to every client,
waits up to 5s for their answers and exits 0.
Exit codes: 0 clean stop, 1 cannot start (address in use, bad certificate), 2 usage error.`;

const SERVER_FLAGS = {
  ...COMMON_FLAGS,
  "addr": { type: "string" },
  "max-connections": { type: "string" },
  "memory-budget": { type: "string" },
  "origin": { type: "string", multiple: true },
  "subprotocol": { type: "string", multiple: true },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "workers": { type: "string" },
  // Internal: set by the supervisor on the processes it starts.
  "worker-index": { type: "string" },
} as const;

async function main(): Promise<number> {
  const { values: v, positionals } = parseFlags(Deno.args, SERVER_FLAGS, true);
  if (v.help) {
    console.log(HELP);
    return EXIT_OK;
  }
  if (v.version) {
    console.log(versionLine("server"));
    return EXIT_OK;
  }
  if (positionals.length) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`);
  }
  const common = commonSettings(v, {
    pingIntervalMs: DEFAULT_SERVER_PING_INTERVAL_MS,
    pongTimeoutMs: DEFAULT_SERVER_PONG_TIMEOUT_MS,
    maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
    handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
  });
  const { hostname, port } = parseAddr(v.addr ?? "localhost:8080");
  const maxConnections = intFlag("--max-connections", v["max-connections"], 0);
  const memoryBudget = sizeFlag("--memory-budget", v["memory-budget"], DEFAULT_MEMORY_BUDGET);
  if (Boolean(v["tls-cert"]) !== Boolean(v["tls-key"])) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  let workers = workerCount(v.workers);
  if (workers === null) {
    throw new UsageError(`--workers takes a number from 1 to 256 or auto, got "${v.workers}"`);
  }
  const workerIndex = v["worker-index"] === undefined
    ? null
    : intFlag("--worker-index", v["worker-index"], 0);
  if (v["print-keepalive"]) {
    printKeepAlive(common, "server");
    return EXIT_OK;
  }
  const log = createLogger(common.logFormat);
  if (workers > 1 && workerIndex === null) {
    if (reusePortSupported()) {
      return await superviseWorkers({
        count: workers,
        args: withoutFlag(Deno.args, "--workers"),
        hostname,
        port,
        logger: log,
      });
    }
    log.warn("workers", {
      message: `--workers ${v.workers}: SO_REUSEPORT is not supported on ${Deno.build.os}; ` +
        "running one worker",
    });
    workers = 1;
  }
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
  const tls = v["tls-cert"]
    ? {
      cert: await readFile("--tls-cert", v["tls-cert"]),
      key: await readFile("--tls-key", v["tls-key"]!),
    }
    : undefined;
  // Listen for signals before announcing "listening", so a stop sent right after it is not lost.
  const stop = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve(signal));
  }
  // A worker whose supervisor is gone (even by SIGKILL) drains and exits instead of living on.
  const channel = workerIndex === null
    ? null
    : new WorkerChannel(() => stop.resolve("supervisor-gone"));
  const fields = workerIndex === null ? undefined : { worker: workerIndex, pid: Deno.pid };
  let server;
  try {
    server = startServer({
      hostname,
      port,
      keepAlive: common.keepAlive,
      userTimeoutMs: common.userTimeoutMs,
      maxConnections,
      maxMessageSize: common.maxMessageSize,
      compression: common.compression,
      handshakeTimeoutMs: common.handshakeTimeoutMs,
      origins: v.origin ?? [],
      subprotocols: v.subprotocol ?? [],
      pingIntervalMs: common.pingIntervalMs,
      pongTimeoutMs: common.pongTimeoutMs,
      stallTimeoutMs: common.stallTimeoutMs,
      faults: common.faults,
      memoryBudget,
      tls,
      logger: log,
      reusePort: workerIndex !== null,
      logFields: fields,
      collectMetrics: channel ? () => channel.collect() : undefined,
    });
    channel?.attach(server.metrics, server.port);
  } catch (err) {
    throw new Error(
      `cannot listen on ${v.addr ?? "localhost:8080"}: ${err instanceof Error ? err.message : err}`,
    );
  }
  const signal = await stop.promise;
  log.info("shutdown", { signal, ...fields });
  await server.shutdown();
  return EXIT_OK;
}

/** Reads a PEM file; a missing or unreadable file is a failure to start (exit 1), not a usage error. */
async function readFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`${flag}: cannot read ${path}: ${fileErrorText(err)}`);
  }
}

if (import.meta.main) runMain("server", main);
