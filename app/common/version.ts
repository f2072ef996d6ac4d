/**
 * The programs' version, from deno.json's `version`, and how `--version`
 * prints it.
 *
 * @module
 */

import config from "../../deno.json" with { type: "json" };

/** This release's version, from deno.json. */
export const VERSION: string = config.version;

/** What `--version` prints: `keepalive-ws client 0.2.0 (Deno 2.9.6)`. */
export function versionLine(program: "client" | "server"): string {
  return `keepalive-ws ${program} ${VERSION} (Deno ${Deno.version.deno})`;
}
