/**
 * `HOST:PORT` text for network addresses, with IPv6 literals in brackets.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Formats a network address as `host:port`, with brackets for IPv6. */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") {
    return String(addr.transport);
  }
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** Splits `HOST:PORT` (IPv6 in brackets) into its parts. */
export function parseAddr(text: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(
      `--addr takes HOST:PORT such as localhost:8080 or [::1]:0, got "${text}"`,
    );
  }
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}
