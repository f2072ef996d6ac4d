/**
 * What either program's command line asks for, and doing it: a text to
 * print (`--help`, `--version`), the keepalive report (`--print-keepalive`),
 * or the program itself.
 *
 * @module
 */

import type { LogFormat } from "./log.ts";
import { printKeepAlive } from "./report.ts";
import { EXIT_OK } from "./run.ts";
import type { ConnectionSettings } from "./settings.ts";

/** A command line read: print, report, or run `P`. */
export type Command<P> =
  | { type: "print"; text: string }
  | { type: "keepalive-report"; settings: ConnectionSettings; logFormat: LogFormat }
  | { type: "run"; program: P };

/** Does what `command` asks of `program` (client or server); resolves with the exit code. */
export async function runCommand<P>(
  command: Command<P>,
  program: "client" | "server",
  run: (p: P) => Promise<number>,
): Promise<number> {
  switch (command.type) {
    case "print":
      console.log(command.text);
      return EXIT_OK;
    case "keepalive-report":
      printKeepAlive(command.settings, command.logFormat, program);
      return EXIT_OK;
    case "run":
      return await run(command.program);
  }
}
