/**
 * A quick run of `deno task bench` with tiny numbers: the machinery (load
 * generator, the three servers, the client driver, the table and the JSON)
 * works end to end and gives a figure for every server. No timing is asserted.
 */

import assert from "node:assert/strict";
import { median, METRICS, type Row, type Sample, summarise } from "../bench/report.ts";

const BENCH = new URL("../bench/bench.ts", import.meta.url).pathname;
/** The smoke run must finish well within this, or the test fails instead of hanging. */
const SMOKE_TIMEOUT_MS = 240_000;

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z /.test(stat); // A zombie has exited.
  } catch {
    return false;
  }
}

Deno.test("bench with tiny numbers reports every metric for every server and stops them all", async () => {
  const out = await Deno.makeTempDir({ prefix: "bench-smoke-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        BENCH,
        "--runs=1",
        "--warmup=100ms",
        "--duration=300ms",
        "--idle-conns=40",
        "--idle-dialers=8",
        `--out=${out}`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(SMOKE_TIMEOUT_MS),
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bench failed:\n${stderr}\n${stdout}`);

    const files = [...Deno.readDirSync(out)].map((e) => e.name);
    assert.equal(files.length, 1, `expected one JSON result, got ${files}`);
    const result = JSON.parse(Deno.readTextFileSync(`${out}/${files[0]}`));
    const rows: Row[] = result.rows;

    for (const spec of METRICS) {
      const row = rows.find((r) => r.scenario === spec.scenario && r.metric === spec.metric);
      assert.ok(row, `no row for ${spec.scenario} ${spec.metric}`);
      const who = spec.scenario === "client" ? ["ours", "deno"] : ["ours", "deno", "ws"];
      for (const w of who) {
        const v = row.median[w as keyof Row["median"]];
        assert.ok(
          typeof v === "number" && Number.isFinite(v) && v > 0,
          `${spec.scenario} ${spec.metric} ${w}: ${v}`,
        );
      }
      assert.ok(Number.isFinite(row.ratio.deno), `${spec.metric}: no ratio against deno`);
      assert.match(stdout, new RegExp(`^${spec.scenario}\\s+${spec.metric}\\s`, "m"));
    }
    assert.match(stdout, /load generator: Go gorilla\/websocket/);

    const pids = new Set((result.samples as Sample[]).flatMap((s) => s.pid ? [s.pid] : []));
    assert.equal(pids.size, 3, "one process per server");
    for (const pid of pids) assert.ok(!alive(pid), `server process ${pid} still running`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("bench summary takes medians and checks each target against ours/peer", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  const sample = (who: Sample["who"], scenario: Sample["scenario"], values: Sample["values"]) => ({
    run: 1,
    scenario,
    who,
    values,
  });
  const rows = summarise([
    sample("ours", "small", { msgs_per_s: 90 }),
    sample("deno", "small", { msgs_per_s: 100 }),
    sample("ws", "small", { msgs_per_s: 45 }),
    sample("ours", "rtt", { p50_us: 110, p99_us: 200 }),
    sample("deno", "rtt", { p50_us: 100, p99_us: 100 }),
  ]);
  const small = rows.find((r) => r.metric === "msgs_per_s" && r.scenario === "small")!;
  assert.equal(small.ratio.deno, 0.9);
  assert.equal(small.ratio.ws, 2);
  assert.deepEqual(small.targets.map((t) => [t.peer, t.met]), [["deno", false], ["ws", true]]);
  const p50 = rows.find((r) => r.metric === "p50_us")!;
  assert.ok(Math.abs(p50.ratio.deno! - 1.1) < 1e-9);
  assert.deepEqual(p50.targets.map((t) => t.met), [true]); // Lower is better: 1.1 ≤ 1.2.
  assert.equal(rows.some((r) => r.scenario === "large"), false, "no samples, no row");
});
