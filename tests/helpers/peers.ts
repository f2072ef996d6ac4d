/**
 * Where the tests find the peers this project did not write (whether each is
 * installed is asked of {@linkcode ./needs.ts}), and the build of the Go ones.
 *
 * @module
 */

import { DEBIAN_GOPATH, pathOf } from "./needs.ts";

export { DEBIAN_GOPATH } from "./needs.ts";

/** Debian's python3, which has python3-websockets (not a venv's). */
export const PYTHON: string = pathOf("python3Websockets");
/** Debian's chromium. */
export const CHROMIUM: string = pathOf("chromium");

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
  const out = await new Deno.Command(pathOf("go"), {
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
