/**
 * keepalive-ws client: a command-line WebSocket client whose TCP keepalive
 * matches Go's defaults and is reported as it is really in force.
 *
 * Run `deno task client --help` for the flags. The command line becomes
 * one options object (`app/client/cli.ts`), which the program runs
 * (`app/client/run.ts`).
 *
 * @module
 */

import { runMain } from "./app/common/run.ts";
import { parseClientArgs } from "./app/client/cli.ts";
import { clientCommand } from "./app/client/run.ts";

if (import.meta.main) runMain("client", () => clientCommand(parseClientArgs(Deno.args)));
