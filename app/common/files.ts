/**
 * The files the programs read, the PEM certificates and keys of
 * `--tls-cert`, `--tls-key` and `--ca`: a file that cannot be read is a
 * failure to start (exit 1) that names the flag and the file, not a usage
 * error.
 *
 * @module
 */

import { errorText } from "../../lib/errors.ts";

/** The message of a file error without Deno's trailing `: readfile '/path'` (the caller names the file). */
export function fileErrorText(err: unknown): string {
  return errorText(err).replace(/: [a-z]+ '[^']*'$/, "");
}

/** Reads the text file given to `flag`; throws an Error naming both when it cannot. */
export async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`${flag}: cannot read ${path}: ${fileErrorText(err)}`);
  }
}
