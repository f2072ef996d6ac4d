/**
 * `deno task compile` for the host target: the binaries it makes must run
 * without Deno, take the flags, and have the permissions they need baked in
 * (`--print-keepalive` reads /proc and uses FFI).
 *
 * `deno compile` downloads its base runtime (denort) from dl.deno.land. This
 * file tries once, at load; when the download is impossible the test is
 * reported as ignored with the reason in its name, never as passed.
 */

import assert from "node:assert/strict";
import { EXIT_NO_RUNTIME } from "../tools/compile.ts";

const TOOL = new URL("../tools/compile.ts", import.meta.url).pathname;
const NAME = "deno task compile builds host binaries that run --help and --print-keepalive";

const outDir = await Deno.makeTempDir({ prefix: "keepalive-ws-dist-" });
const built = await new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-all", TOOL, "--target", "host", "--out", outDir],
  stdout: "piped",
  stderr: "piped",
}).output();
const report = new TextDecoder().decode(built.stdout) + new TextDecoder().decode(built.stderr);
const noRuntime = built.code === EXIT_NO_RUNTIME;
if (noRuntime) await Deno.remove(outDir, { recursive: true });

Deno.test({
  name: noRuntime ? `${NAME} (NOT RUN: cannot download the denort base runtime here)` : NAME,
  ignore: noRuntime,
  async fn() {
    try {
      assert.equal(built.code, 0, report);
      const lines = report.trim().split("\n");
      assert.equal(lines.length, 2, report);
      const paths = lines.map((l) => {
        const m = /^ok\s+\S+\s+(\S+) \([\d.]+ MiB\)$/.exec(l);
        assert.ok(m, `not an "ok" line: ${l}`);
        return m[1];
      });
      for (const [path, program] of paths.map((p, i) => [p, ["server", "client"][i]])) {
        assert.match(path, new RegExp(`/keepalive-ws-${program}-[a-z]+-(x64|arm64)(\\.exe)?$`));
        const run = async (args: string[]) => {
          const out = await new Deno.Command(path, { args, stdout: "piped", stderr: "piped" })
            .output();
          return {
            code: out.code,
            stdout: new TextDecoder().decode(out.stdout),
            stderr: new TextDecoder().decode(out.stderr),
          };
        };
        const help = await run(["--help"]);
        assert.equal(help.code, 0, help.stderr);
        assert.match(help.stdout, new RegExp(`^keepalive-ws ${program}:`));
        const ka = await run(["--print-keepalive", "--log-format", "json"]);
        assert.equal(ka.code, 0, ka.stderr);
        assert.doesNotMatch(ka.stderr, /permission|Requires/i);
        const parsed = JSON.parse(ka.stdout);
        assert.equal(parsed.program, program);
        const usage = await run(["--no-such-flag"]);
        assert.equal(usage.code, 2);
      }
    } finally {
      await Deno.remove(outDir, { recursive: true }).catch(() => {});
    }
  },
});
