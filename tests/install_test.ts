/**
 * The programs install only what they need. `deno.json` is the programs'
 * and the library's config and names no npm package; the npm packages the
 * tests and the benchmark use (ws, playwright-core,
 * parse-prometheus-text-format) are in `deno.test.json` (locked in
 * `deno.test.lock`), which only `deno task test`, `check`, `bench` and
 * `stress` pass with `--config`.
 */

import assert from "node:assert/strict";
import { ROOT } from "./helpers/process.ts";

/** Top-level entries not copied: build output, installed packages, results, git. */
const SKIP = new Set([".git", "node_modules", "dist", "test-artifacts"]);

/** Copies the repository's files (not node_modules, git or results) to `to`. */
async function copyTree(from: URL, to: string, depth = 0): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (depth === 0 && SKIP.has(entry.name)) continue;
    if (entry.name === "results" && from.pathname.endsWith("/bench/")) continue;
    const source = new URL(entry.name + (entry.isDirectory ? "/" : ""), from);
    if (entry.isDirectory) await copyTree(source, `${to}/${entry.name}`, depth + 1);
    else if (entry.isFile) await Deno.copyFile(source, `${to}/${entry.name}`);
  }
}

/** Every file under `dir` (relative paths), or [] when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, prefix: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`, `${prefix}${e.name}/`);
      else out.push(prefix + e.name);
    }
  };
  await walk(dir, "").catch(() => {});
  return out;
}

Deno.test("deno task server and deno task client in a fresh copy install no npm package and make no node_modules", async () => {
  const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-fresh-" });
  const denoDir = await Deno.makeTempDir({ prefix: "keepalive-ws-denodir-" });
  try {
    await copyTree(ROOT, dir);
    const testLock = await Deno.readTextFile(`${dir}/deno.test.lock`);
    for (const task of ["server", "client"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "-q", task, "--help"],
        cwd: dir,
        env: { DENO_DIR: denoDir, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.match(new TextDecoder().decode(out.stdout), new RegExp(`Usage: deno task ${task}`));
      assert.doesNotMatch(
        stderr,
        /Download|Initialize|npm:/,
        `deno task ${task} fetched something`,
      );
    }
    assert.equal(
      await Deno.stat(`${dir}/node_modules`).then(() => true, () => false),
      false,
      "a node_modules directory was made",
    );
    assert.deepEqual(await filesUnder(`${denoDir}/npm`), [], "npm packages were fetched");
    assert.equal(
      await Deno.readTextFile(`${dir}/deno.test.lock`),
      testLock,
      "the tests' lock moved",
    );
    assert.equal(
      await Deno.stat(`${dir}/deno.lock`).then(() => true, () => false),
      false,
      "the programs lock nothing: they import no package",
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("deno.json names no npm package; deno.test.json holds the tests' and the bench's", async () => {
  const read = async (name: string) => JSON.parse(await Deno.readTextFile(new URL(name, ROOT)));
  const programs = await read("deno.json");
  const tests = await read("deno.test.json");
  assert.equal(programs.imports, undefined);
  assert.equal(programs.nodeModulesDir, undefined);
  assert.deepEqual(Object.keys(tests.imports).sort(), [
    "parse-prometheus-text-format",
    "playwright-core",
    "ws",
  ]);
  assert.equal(tests.nodeModulesDir, "auto", "node_modules/ws at the root, for the Node peers");
  assert.equal(
    tests.lock,
    "deno.test.lock",
    "its own lock: the programs' runs would prune a shared one",
  );
  for (const task of ["test", "check", "bench", "bench:c100k", "stress"]) {
    assert.match(programs.tasks[task], /--config deno\.test\.json/, `${task} uses the test config`);
  }
  for (const task of ["server", "client"]) {
    assert.doesNotMatch(programs.tasks[task], /install|--config/);
  }
});
