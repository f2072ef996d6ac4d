/**
 * keepalive-ws server: a WebSocket echo server whose TCP keepalive matches
 * Go's defaults and is reported as it is really in force.
 *
 * Run `deno task server --help` for the flags. The command line becomes
 * one options object (`app/server/cli.ts`), which the program runs
 * (`app/server/run.ts`).
 *
 * @module
 */

import { runMain } from "./app/common/run.ts";
import { parseServerArgs } from "./app/server/cli.ts";
import { serverCommand } from "./app/server/run.ts";

if (import.meta.main) runMain("server", () => serverCommand(parseServerArgs(Deno.args)));
