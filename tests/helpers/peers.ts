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

/** Where built test peers are kept between runs. */
function cacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ||
    `${Deno.env.get("HOME") || Deno.makeTempDirSync()}/.cache`;
  return `${base}/keepalive-ws-tests`;
}

/**
 * Builds the Go program in `dir` (its `main.go`) in GOPATH mode against
 * Debian's packages, without network, once per source version; returns the
 * binary's path. `needs` names the Debian packages, for the error.
 */
export async function buildGoPeer(dir: URL, name: string, needs: string): Promise<string> {
  const source = await Deno.readFile(new URL("main.go", dir));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", source));
  const hash = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const cache = cacheDir();
  const bin = `${cache}/${name}-${hash}`;
  if (await Deno.stat(bin).then(() => true, () => false)) return bin;
  await Deno.mkdir(cache, { recursive: true });
  const out = await new Deno.Command("go", {
    args: ["build", "-o", bin, "."],
    cwd: dir.pathname,
    env: { GO111MODULE: "off", GOPATH: DEBIAN_GOPATH, GOCACHE: `${cache}/go-build`, GOFLAGS: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `go build of ${dir.pathname} failed (needs ${needs}): ` +
        new TextDecoder().decode(out.stderr).trim(),
    );
  }
  return bin;
}
