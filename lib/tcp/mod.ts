/**
 * keepalive-ws/tcp: TCP socket options, set and read back through libc
 * (`Deno.dlopen`, so `--allow-ffi`), for any `Deno.Conn` or `Deno.Listener`.
 *
 * - Go's keepalive semantics: {@linkcode resolveKeepAlive} for
 *   `KeepAliveConfig`, {@linkcode resolveSingleKeepAlive} for the
 *   single-value `Dialer.KeepAlive`, and Linux's limits.
 * - Applying a resolved policy to a socket or a listener, reading back what
 *   the kernel really has in force, and the kernel's own defaults.
 *
 * ```ts
 * import { applyPolicy, resolveKeepAlive } from "@keepalive-ws/keepalive-ws/tcp";
 *
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 5432 });
 * const inForce = applyPolicy(conn, resolveKeepAlive({ idle: 30_000 }));
 * console.log(inForce.idle, inForce.interval, inForce.count); // 30000 15000 9
 * ```
 *
 * @module
 */

export {
  DEFAULT_KEEPALIVE_COUNT,
  DEFAULT_KEEPALIVE_IDLE_MS,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  type KeepAliveConfig,
  type KeepAlivePolicy,
  type KernelKeepAlive,
  LINUX_MAX_KEEPCNT,
  LINUX_MAX_KEEPIDLE_S,
  LINUX_MAX_KEEPINTVL_S,
  LINUX_MIN_KEEPALIVE_S,
  LINUX_MIN_KEEPCNT,
  resolveKeepAlive,
  resolveKeepAliveNamed,
  resolveSingleKeepAlive,
  type ValueNames,
  type ValueSource,
  worstCaseDetectionMs,
} from "./keepalive.ts";
export {
  type ApplyOptions,
  applyPolicy,
  applyToListener,
  kernelKeepAliveDefaults,
  readSocketOptions,
  resetConn,
  type SocketOptions,
  sockoptUnavailableReason,
} from "./sockopt.ts";
export { type TuneOptions, tuneSocket } from "./tune.ts";
