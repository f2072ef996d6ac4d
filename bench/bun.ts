/**
 * Bun for the benchmark's Bun peer, installed through npm: the package
 * `@oven/bun-linux-x64` carries the `bun` binary itself (bin/bun), so
 * `npm install` brings it with no other download. It goes into
 * bench/.cache/bun/ (gitignored by bench/.gitignore) and is reused while its
 * version matches {@linkcode BUN_VERSION}.
 *
 * @module
 */

import { repoPath } from "./servers.ts";

/** The Bun release the benchmark installs. */
export const BUN_VERSION = "1.4.5";

/** Where npm installs it (`npm install --prefix`). */
export const BUN_CACHE = repoPath("bench/.cache/bun");

/** A Bun the benchmark can run. */
export interface Bun {
  /** The binary. */
  path: string;
  /** What `bun --version` says. */
  version: string;
  /** The npm package it came from. */
  package: string;
}

/**
 * The npm package with the Bun binary for this machine: the x64 build needs
 * AVX2, so a CPU without it gets the `-baseline` build.
 */
export function bunPackage(): string {
  if (Deno.build.os !== "linux") {
    throw new Error(`the Bun peer is set up for Linux only, not ${Deno.build.os}`);
  }
  if (Deno.build.arch === "aarch64") return "@oven/bun-linux-aarch64";
  let cpuinfo = "";
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    // Assume a current CPU.
  }
  return cpuinfo && !/\bavx2\b/.test(cpuinfo)
    ? "@oven/bun-linux-x64-baseline"
    : "@oven/bun-linux-x64";
}

async function versionOf(path: string): Promise<string | null> {
  try {
    const out = await new Deno.Command(path, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * Returns Bun {@linkcode BUN_VERSION}, installing it through npm into
 * {@linkcode BUN_CACHE} first when it is not there. Throws one plain sentence
 * when it cannot (no npm, no registry).
 */
export async function ensureBun(log: (line: string) => void): Promise<Bun> {
  const pkg = bunPackage();
  const path = `${BUN_CACHE}/node_modules/${pkg}/bin/bun`;
  let version = await versionOf(path);
  if (version !== BUN_VERSION) {
    log(`installing Bun ${BUN_VERSION} through npm (${pkg}) into ${BUN_CACHE}…`);
    await Deno.mkdir(BUN_CACHE, { recursive: true });
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("npm", {
        args: [
          "install",
          "--no-save",
          "--no-package-lock",
          "--no-audit",
          "--no-fund",
          "--prefix",
          BUN_CACHE,
          `${pkg}@${BUN_VERSION}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (err) {
      throw new Error(
        `Bun is missing and npm cannot run to install it (${
          err instanceof Error ? err.message : err
        }); install Node.js and npm, or leave bun out with --servers`,
      );
    }
    if (!out.success) {
      const why = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" ");
      throw new Error(`Bun is missing and npm install ${pkg}@${BUN_VERSION} failed: ${why}`);
    }
    version = await versionOf(path);
    if (version !== BUN_VERSION) {
      throw new Error(
        `Bun is missing: npm installed ${pkg}@${BUN_VERSION} but ${path} ` +
          `${version === null ? "does not run" : `says version ${version}`}`,
      );
    }
  }
  return { path, version, package: pkg };
}
