/**
 * The shared flags turned, once, into the library's own option names
 * (`keepAlive`, `userTimeout`, `pingInterval`, `pongTimeout`,
 * `stallTimeout`, `maxMessageSize`, `handshakeTimeout`, `compression`,
 * `autoPong`; durations in ms), which `serve()` and `dial()` take as they
 * are, plus what only the programs use: the log format and the faults.
 *
 * @module
 */

import { DEFAULT_STALL_TIMEOUT_MS } from "../../lib/ws/mod.ts";
import type { KeepAlivePolicy } from "../../mod.ts";
import { UsageError } from "./errors.ts";
import { formatDuration } from "./duration.ts";
import { type CommonValues, durationFlag, sizeFlag } from "./flags.ts";
import { keepAliveFromFlags } from "./keepalive.ts";
import { LOG_FORMATS, type LogFormat } from "./log.ts";
import type { Faults } from "./faults.ts";

/** The connection settings of the shared flags, by the names `serve()` and `dial()` use. */
export interface ConnectionSettings {
  /** The keepalive policy, resolved: `serve()` and `dial()` take it as it is. */
  keepAlive: KeepAlivePolicy;
  /** TCP_USER_TIMEOUT in ms; undefined leaves the OS value. */
  userTimeout: number | undefined;
  /** Heartbeat ping period in ms (0 = off). */
  pingInterval: number;
  /** Pong timeout in ms (0 = off). */
  pongTimeout: number;
  /** Stall timeout in ms (0 = off). */
  stallTimeout: number;
  /** permessage-deflate on (offered by the client, accepted by the server). */
  compression: boolean;
  /** Largest message in bytes. */
  maxMessageSize: number;
  /** Handshake bound in ms. */
  handshakeTimeout: number;
  /** Whether pings are answered (false with `--no-pong`). */
  autoPong: boolean;
}

/** What the shared flags resolve to. */
export interface CommonSettings {
  /** The connection settings, in the library's names. */
  connection: ConnectionSettings;
  /** The log format. */
  logFormat: LogFormat;
  /** Faults to inject on every connection. */
  faults: Faults;
  /** `--print-keepalive`: print the report and exit. */
  printKeepAlive: boolean;
}

/** The defaults that differ between the programs. */
export interface ProgramDefaults {
  /** Heartbeat ping period (ms). */
  pingInterval: number;
  /** Pong timeout (ms). */
  pongTimeout: number;
  /** Largest message (bytes). */
  maxMessageSize: number;
  /** Handshake bound (ms). */
  handshakeTimeout: number;
}

/** Resolves the common flags, with the program's own defaults; bad values throw {@linkcode UsageError}. */
export function commonSettings(v: CommonValues, defaults: ProgramDefaults): CommonSettings {
  const logFormat = (v["log-format"] ?? "text") as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) {
    throw new UsageError(`--log-format must be text or json, not "${v["log-format"]}"`);
  }
  // In this order, so that of several bad flags the same one is named as before.
  const { pingInterval, pongTimeout } = heartbeat(v, defaults);
  const keepAlive = keepAliveFromFlags({
    keepalive: v.keepalive,
    idle: v["keepalive-idle"],
    interval: v["keepalive-interval"],
    count: v["keepalive-count"],
    noKeepalive: v["no-keepalive"],
  });
  const userTimeout = durationFlag("--tcp-user-timeout", v["tcp-user-timeout"], 0);
  const stallTimeout = durationFlag(
    "--stall-timeout",
    v["stall-timeout"],
    DEFAULT_STALL_TIMEOUT_MS,
  );
  const maxMessageSize = sizeFlag(
    "--max-message-size",
    v["max-message-size"],
    defaults.maxMessageSize,
  );
  const handshakeTimeout = durationFlag(
    "--handshake-timeout",
    v["handshake-timeout"],
    defaults.handshakeTimeout,
  );
  if (handshakeTimeout <= 0) {
    throw new UsageError("--handshake-timeout must be positive: a handshake needs a bound");
  }
  const faults = faultsFromFlags(v);
  return {
    connection: {
      keepAlive,
      userTimeout: userTimeout || undefined,
      pingInterval,
      pongTimeout,
      stallTimeout,
      compression: v.compression ?? false,
      maxMessageSize,
      handshakeTimeout,
      autoPong: !faults.noPong,
    },
    logFormat,
    faults,
    printKeepAlive: v["print-keepalive"] ?? false,
  };
}

/** `--ping-interval` and `--pong-timeout`; the pong timeout must be the longer. */
function heartbeat(
  v: CommonValues,
  defaults: ProgramDefaults,
): { pingInterval: number; pongTimeout: number } {
  const pingInterval = durationFlag("--ping-interval", v["ping-interval"], defaults.pingInterval);
  const pongTimeout = durationFlag("--pong-timeout", v["pong-timeout"], defaults.pongTimeout);
  if (pingInterval > 0 && pongTimeout > 0 && pongTimeout <= pingInterval) {
    const given = (flag: "ping-interval" | "pong-timeout", ms: number) =>
      `--${flag} ${formatDuration(ms)}${v[flag] === undefined ? " (the default)" : ""}`;
    throw new UsageError(
      `${given("pong-timeout", pongTimeout)} must be longer than ${
        given("ping-interval", pingInterval)
      }: the pong to a ping must have time to arrive`,
    );
  }
  return { pingInterval, pongTimeout };
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
  const after = (flag: "freeze-after" | "drop-after") =>
    v[flag] === undefined ? null : durationFlag(`--${flag}`, v[flag], 0);
  return {
    noPong: v["no-pong"] ?? false,
    freezeAfter: after("freeze-after"),
    dropAfter: after("drop-after"),
    dropMode: mode,
  };
}
