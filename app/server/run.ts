/**
 * The server program, once its command line is read: one process, or a
 * supervisor and its workers; listen, serve until asked to stop, drain.
 *
 * @module
 */

import { errorText } from "../../lib/errors.ts";
import { readFlagFile } from "../common/files.ts";
import { warnIfUntunable } from "../common/keepalive.ts";
import { createLogger, writeStderrSoon } from "../common/log.ts";
import { runCommand } from "../common/command.ts";
import { EXIT_OK } from "../common/run.ts";
import { listenForStop } from "../common/signals.ts";
import type { ServerCommand, ServerProgram } from "./cli.ts";
import { startServer } from "./echo.ts";
import { reusePortSupported, superviseWorkers, withoutFlag } from "./supervisor.ts";
import { WorkerChannel } from "./worker.ts";

/** Does what the command line asked for; resolves with the exit code. */
export function serverCommand(command: ServerCommand): Promise<number> {
  return runCommand(command, "server", runServer);
}

/**
 * Runs the server until SIGINT, SIGTERM or the end of the npm it was
 * started through; a worker also stops when its supervisor is gone.
 */
export async function runServer(p: ServerProgram): Promise<number> {
  const log = createLogger(p.logFormat, writeStderrSoon);
  if (p.workers > 1 && p.workerIndex === null) {
    if (reusePortSupported()) {
      return await superviseWorkers({
        count: p.workers,
        args: withoutFlag(p.args, "--workers"),
        hostname: p.settings.hostname,
        port: p.settings.port,
        logger: log,
      });
    }
    log.warn("workers", {
      message: `--workers ${p.workersFlag}: SO_REUSEPORT is not supported on ${Deno.build.os}; ` +
        "running one worker",
    });
  }
  warnIfUntunable(log, p.settings.keepAlive);
  const tls = p.tlsFiles
    ? {
      cert: await readFlagFile("--tls-cert", p.tlsFiles.cert),
      key: await readFlagFile("--tls-key", p.tlsFiles.key),
      ...(p.tlsFiles.clientCa !== null
        ? { clientCa: await readFlagFile("--tls-client-ca", p.tlsFiles.clientCa) }
        : {}),
    }
    : undefined;
  const worker = p.workerIndex !== null;
  // Listen before announcing "listening", so a stop sent right after it is not lost. A
  // worker's launcher is its supervisor: one whose supervisor is gone (even by SIGKILL)
  // drains and exits instead of living on.
  const stop = listenForStop({ launcher: !worker });
  const channel = worker
    ? new WorkerChannel(() => stop.request({ signal: "supervisor-gone" }))
    : null;
  const fields = worker ? { worker: p.workerIndex, pid: Deno.pid } : undefined;
  let server;
  try {
    server = startServer({
      ...p.settings,
      tls,
      reusePort: worker,
      faults: p.faults,
      logger: log,
      logFields: fields,
      collectMetrics: channel ? () => channel.collect() : undefined,
    });
    channel?.attach(server.metrics, server.port);
  } catch (err) {
    throw new Error(`cannot listen on ${p.addr}: ${errorText(err)}`);
  }
  const request = await stop.requested;
  log.info("shutdown", { ...request, ...fields });
  await server.shutdown();
  return EXIT_OK;
}
