/**
 * Where the tests find the peers this project did not write, and whether
 * each is installed here: a test of a missing peer says NOT RUN instead of
 * failing. `.ci/run` installs them all.
 *
 * @module
 */

import { ROOT } from "./process.ts";

/** Debian's python3, which has python3-websockets (not a venv's). */
export const PYTHON = "/usr/bin/python3";
/** Debian's chromium. */
export const CHROMIUM = "/usr/bin/chromium";
/** Where Debian's golang-*-dev packages put their sources (GOPATH mode). */
export const DEBIAN_GOPATH = "/usr/share/gocode";

/** Whether `command args` runs and exits 0. */
export function available(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/** Node.js with this repository's npm `ws`. */
export const HAVE_NODE_WS = available("node", [
  "-e",
  `require(${JSON.stringify(new URL("node_modules/ws", ROOT).pathname)})`,
]);

/** Python with the `websockets` package. */
export const HAVE_PYTHON_WEBSOCKETS = available(PYTHON, ["-c", "import websockets"]);
