/**
 * How both programs end: an exit code, and on failure one sentence on
 * stderr, never a stack trace, with no character that could drive the
 * terminal.
 *
 * @module
 */

import { errorText } from "../../lib/errors.ts";
import { UsageError } from "./errors.ts";
import { flushStderr, writeStderr } from "./log.ts";

/** Exit code for success. */
export const EXIT_OK = 0;
/** Exit code for a failure: refused, timed out, closed abnormally. */
export const EXIT_FAILURE = 1;
/** Exit code for a usage error: unknown flag, bad value, bad URL. */
export const EXIT_USAGE = 2;

/**
 * How a user starts `program` again: `deno task client`, or the binary's
 * own name when it was built with `deno compile`.
 */
export function commandName(program: string): string {
  const exe = Deno.execPath().split(/[\\/]/).pop() ?? "";
  return /^deno(\.exe)?$/.test(exe) ? `deno task ${program}` : exe;
}

/**
 * C0 controls but newline, DEL and C1 controls: what an error line must not
 * carry to a terminal, even when it quotes what the user typed.
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/g;

/** `text` with every control character but newline written as `\xNN`. */
export function plainText(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * Runs a program's main function and exits with its code: a
 * {@linkcode UsageError} prints one line and a hint and exits 2; any other
 * error prints one line and exits 1.
 */
export async function runMain(
  program: string,
  main: () => Promise<number>,
): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    const usage = err instanceof UsageError;
    const hint = usage ? `\nRun '${commandName(program)} --help' for usage.` : "";
    flushStderr(); // what was logged comes before the last word
    writeStderr(`${program}: ${plainText(errorText(err))}${hint}\n`);
    code = usage ? EXIT_USAGE : EXIT_FAILURE;
  }
  flushStderr();
  Deno.exit(code);
}
