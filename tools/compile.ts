/**
 * `deno task compile`: builds single-file `server` and `client` binaries
 * with `deno compile` for every supported platform, into `dist/`:
 *
 * ```
 * dist/keepalive-ws-server-linux-x64        dist/keepalive-ws-client-linux-x64
 * dist/keepalive-ws-server-linux-arm64      …
 * dist/keepalive-ws-server-macos-x64
 * dist/keepalive-ws-server-macos-arm64
 * dist/keepalive-ws-server-windows-x64.exe
 * ```
 *
 * Each binary gets exactly the permissions the program needs, baked in:
 * `--allow-net` (listen, connect), `--allow-ffi` (setsockopt/getsockopt
 * through libc) and `--allow-read` (the PEM files of --tls-cert, --tls-key
 * and --ca); the client also `--allow-write` and `--allow-env` (its saved
 * history, under $XDG_STATE_HOME or $HOME), the server `--allow-run` and
 * `--unstable-net`, to start its --workers on a port shared with SO_REUSEPORT.
 * Nothing else is included: the module graph of `server.ts`/`client.ts` only.
 *
 * `deno compile` downloads a base runtime (`denort`) per target from
 * dl.deno.land. When that host cannot be reached, the tool says so in one
 * line and exits 3, having built nothing.
 *
 * Usage: `deno task compile [--target NAME|TRIPLE|host]… [--out DIR]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ALL_PROXY_ENV } from "../lib/client/proxy_env.ts";
import { HISTORY_ENV } from "../app/client/history.ts";

/** The platforms binaries are built for: Rust target triple and the file-name suffix. */
export const TARGETS = [
  { triple: "x86_64-unknown-linux-gnu", name: "linux-x64", ext: "" },
  { triple: "aarch64-unknown-linux-gnu", name: "linux-arm64", ext: "" },
  { triple: "x86_64-apple-darwin", name: "macos-x64", ext: "" },
  { triple: "aarch64-apple-darwin", name: "macos-arm64", ext: "" },
  { triple: "x86_64-pc-windows-msvc", name: "windows-x64", ext: ".exe" },
] as const;

/** The two programs: entry module and binary name prefix. */
export const PROGRAMS = [
  // The server also starts copies of itself for --workers (run) on a shared
  // port (reusePort, still behind --unstable-net in Deno 2.9).
  {
    entry: "server.ts",
    binary: "keepalive-ws-server",
    flags: ["--allow-net", "--allow-ffi", "--allow-read", "--allow-run", "--unstable-net"],
  },
  {
    entry: "client.ts",
    binary: "keepalive-ws-client",
    flags: [
      "--allow-net",
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      `--allow-env=${[...ALL_PROXY_ENV, ...HISTORY_ENV].join(",")}`,
    ],
  },
] as const;

/** Exit code when a target failed to compile. */
export const EXIT_FAILED = 1;
/** Exit code for a bad command line. */
export const EXIT_USAGE = 2;
/** Exit code when the denort base runtime cannot be downloaded: nothing was built. */
export const EXIT_NO_RUNTIME = 3;

const ROOT = new URL("../", import.meta.url);

/** What `deno compile` prints when it cannot fetch the base runtime. */
const DOWNLOAD_FAILED =
  /Setting up base binary|error sending request for url \(https:\/\/dl\.deno\.land/;

type Target = (typeof TARGETS)[number];

/** Resolves `--target` values (a short name, a triple, or `host`) to targets. */
function selectTargets(wanted: string[]): Target[] {
  if (wanted.length === 0) return [...TARGETS];
  return wanted.map((w) => {
    const key = w === "host" ? Deno.build.target : w;
    const target = TARGETS.find((t) => t.name === key || t.triple === key);
    if (!target) {
      throw new Error(
        `unknown target "${w}": use host or one of ${TARGETS.map((t) => t.name).join(", ")}`,
      );
    }
    return target;
  });
}

/** Runs `deno compile` for one program and target; returns how it went. */
async function compileOne(
  program: (typeof PROGRAMS)[number],
  target: Target,
  outDir: string,
): Promise<
  { ok: true; path: string; bytes: number } | { ok: false; noRuntime: boolean; why: string }
> {
  const path = `${outDir}/${program.binary}-${target.name}${target.ext}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      ...program.flags,
      "--target",
      target.triple,
      "--output",
      path,
      new URL(program.entry, ROOT).pathname,
    ],
    cwd: new URL(".", ROOT).pathname,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (out.success) return { ok: true, path, bytes: (await Deno.stat(path)).size };
  const stderr = new TextDecoder().decode(out.stderr);
  const noRuntime = DOWNLOAD_FAILED.test(stderr);
  // The root cause is the last "N: …" line of the "Caused by:" chain, else the "error:" line.
  const report = stderr.split("Stack backtrace")[0].split("\n").map((l) => l.trim());
  const causes = report.filter((l) => /^\d+: /.test(l)).map((l) => l.replace(/^\d+: /, ""));
  const error = report.find((l) => l.startsWith("error: "))?.slice(7);
  return { ok: false, noRuntime, why: causes.at(-1) ?? error ?? "deno compile failed" };
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        target: { type: "string", multiple: true },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`compile: ${err instanceof Error ? err.message : err}`);
    return EXIT_USAGE;
  }
  if (values.help) {
    console.log(
      `Usage: deno task compile [--target NAME]... [--out DIR]\n` +
        `Targets: host, ${TARGETS.map((t) => t.name).join(", ")} (default: all)\n` +
        `Output: DIR/keepalive-ws-{server,client}-NAME (default DIR: dist)\n` +
        `Exit codes: 0 built, 1 a build failed, 2 usage error, 3 cannot download the base runtime`,
    );
    return 0;
  }
  let targets: Target[];
  try {
    targets = selectTargets(values.target ?? []);
  } catch (err) {
    console.error(`compile: ${err instanceof Error ? err.message : err}`);
    return EXIT_USAGE;
  }
  const outDir = values.out ?? new URL("dist", ROOT).pathname;
  await Deno.mkdir(outDir, { recursive: true });

  let failed = 0;
  for (const target of targets) {
    for (const program of PROGRAMS) {
      const result = await compileOne(program, target, outDir);
      if (result.ok) {
        const mib = (result.bytes / 1024 / 1024).toFixed(1);
        console.log(`ok    ${target.name.padEnd(12)} ${result.path} (${mib} MiB)`);
        continue;
      }
      if (result.noRuntime) {
        console.error(
          `compile: cannot download the denort base runtime for ${target.triple} ` +
            `from dl.deno.land (${result.why}); stopped`,
        );
        return EXIT_NO_RUNTIME;
      }
      console.error(`FAIL  ${target.name.padEnd(12)} ${program.entry}: ${result.why}`);
      failed++;
    }
  }
  return failed ? EXIT_FAILED : 0;
}

if (import.meta.main) Deno.exit(await main());
