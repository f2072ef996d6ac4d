/**
 * A quick run of `deno task bench` with tiny numbers: the machinery (load
 * generator, the five servers including Bun and gorilla, every default
 * scenario, the client driver, CPU per message, the table and the JSON)
 * works end to end and gives a figure for every server (in the deflate
 * scenario every server but Deno's, which has no permessage-deflate). No
 * timing is asserted; that compression was agreed and shrank the bytes on
 * the wire is. c100k is left out (it holds 100,000 connections).
 */

import assert from "node:assert/strict";
import { ensureBun } from "../bench/bun.ts";
import { parseSs, ssSeconds } from "../bench/c100k.ts";
import { DEFAULT_SCENARIOS } from "../bench/config.ts";
import { alive, clockTicksPerSecond, cpuSecondsBetween } from "../bench/procfs.ts";
import { CONTENDERS, median, METRICS, type Row, type Sample, summarise } from "../bench/report.ts";
import { needs, pathOf } from "./helpers/needs.ts";

const BENCH = new URL("../bench/bench.ts", import.meta.url).pathname;
/** The smoke run must finish well within this, or the test fails instead of hanging. */
const SMOKE_TIMEOUT_MS = 240_000;
/** Metrics that count events which may well be none. */
const COUNTS = new Set(["errors", "lost", "closes"]);
/** Deno's built-in server does not implement permessage-deflate: no deflate figures. */
const NOT_DEFLATING = new Set(["deno"]);

// The load generator and gorilla's echo server are Go with Debian's gorilla; ws runs on Node;
// Bun comes from npm.
const SMOKE = needs(
  "bench with tiny numbers reports every metric and CPU per message for every server, and stops them all",
  "go",
  "gorilla",
  "nodeWs",
  "npm",
);

Deno.test(SMOKE, async () => {
  // The bench installs Bun through npm itself; say so plainly when it cannot.
  try {
    await ensureBun((line) => console.error(line));
  } catch (err) {
    assert.fail(
      `Bun is missing, so the bun peer cannot run: ${err instanceof Error ? err.message : err}`,
    );
  }
  const out = await Deno.makeTempDir({ prefix: "bench-smoke-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        BENCH,
        "--runs=1",
        "--warmup=100ms",
        "--duration=500ms",
        "--idle-conns=600",
        "--idle-dialers=8",
        "--pipelined-size=65536",
        "--storm-clients=300",
        "--storm-dialers=30",
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

    for (const spec of METRICS.filter((m) => DEFAULT_SCENARIOS.includes(m.scenario))) {
      const row = rows.find((r) => r.scenario === spec.scenario && r.metric === spec.metric);
      assert.ok(row, `no row for ${spec.scenario} ${spec.metric}`);
      const who = spec.scenario === "client"
        ? ["ours", "deno"]
        : spec.scenario === "deflate"
        ? CONTENDERS.filter((c) => !NOT_DEFLATING.has(c))
        : CONTENDERS;
      for (const w of who) {
        const v = row.median[w as keyof Row["median"]];
        // CPU comes in 10 ms clock ticks: in so short a run a lean server (Bun, 600 idle
        // connections) may stay under one, and 0 is then a true reading.
        const ok = typeof v === "number" && Number.isFinite(v) &&
          (COUNTS.has(spec.metric) || row.kind === "cpu" ? v >= 0 : v > 0);
        assert.ok(ok, `${spec.scenario} ${spec.metric} ${w}: ${v}${stderr ? `\n${stderr}` : ""}`);
      }
      const noCpuSeen = row.kind === "cpu" && row.median.deno === 0; // no ratio to a 0
      if (!COUNTS.has(spec.metric) && spec.scenario !== "deflate" && !noCpuSeen) {
        assert.ok(Number.isFinite(row.ratio.deno), `${spec.metric}: no ratio against deno`);
      }
      assert.match(stdout, new RegExp(`^${spec.scenario}\\s+${spec.metric}\\s`, "m"));
    }
    // CPU per message (or connection) is measured in every scenario, for every server.
    const cpuRows = rows.filter((r) => r.kind === "cpu");
    assert.deepEqual(
      cpuRows.map((r) => r.scenario),
      [
        "small",
        "large",
        "rtt",
        "idle",
        "accept",
        "storm",
        "pipelined",
        "json",
        "deflate",
        "client",
      ],
    );
    // Compression was agreed with every server that has it, and shrank what the server sent;
    // uncompressed, the wire carries a little more than the payload (frame headers).
    const samples = result.samples as Sample[];
    for (const s of samples.filter((s) => s.scenario === "deflate")) {
      assert.match(s.note ?? "", /^agreed: permessage-deflate/, `deflate ${s.who}: ${s.note}`);
      assert.ok(s.values.ratio_s2c > 1.3, `deflate ${s.who}: ratio ${s.values.ratio_s2c}`);
    }
    for (const s of samples.filter((s) => s.scenario === "json")) {
      assert.equal(s.note, undefined, `json ${s.who}: ${s.note}`);
      assert.ok(s.values.ratio_s2c > 0.9 && s.values.ratio_s2c <= 1, `json ${s.who}`);
    }
    assert.deepEqual(
      samples.filter((s) => s.scenario === "deflate").map((s) => s.who).sort(),
      CONTENDERS.filter((c) => !NOT_DEFLATING.has(c)).sort(),
    );
    assert.match(stdout, /^with permessage-deflate on \(json, deflate\):$/m);
    assert.match(stdout, /load generator: Go gorilla\/websocket/);
    assert.match(stdout, /^scenario\s+metric\s+unit\s+ours\s+deno\s+ws\s+bun\s+gorilla\s/m);
    for (const who of CONTENDERS) {
      assert.match(stdout, new RegExp(`^pipelined ${who} \\(run 1\\): `, "m"));
    }
    assert.match(result.machine.bun, /^\d+\.\d+\.\d+$/);

    // One process per server, and again per server with compression on (json, deflate).
    const pids = new Set(samples.flatMap((s) => s.pid ? [s.pid] : []));
    assert.equal(pids.size, 2 * CONTENDERS.length, "one process per server and set");

    for (const pid of pids) assert.ok(!alive(pid), `server process ${pid} still running`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test(
  needs("bench's clock ticks per second are what getconf CLK_TCK prints", "getconf"),
  () => {
    const out = new Deno.Command(pathOf("getconf"), { args: ["CLK_TCK"] }).outputSync();
    assert.ok(out.success);
    assert.equal(clockTicksPerSecond(), Number(new TextDecoder().decode(out.stdout).trim()));
  },
);

Deno.test("bench CPU time adds up a process tree between two snapshots", () => {
  // Ticks: pid 1 ran 30, pid 2 started in between (all 7 count), pid 3 exited (its ticks are lost).
  const start = new Map([[1, 100], [3, 50]]);
  const end = new Map([[1, 130], [2, 7]]);
  assert.equal(cpuSecondsBetween(start, end), 37 / clockTicksPerSecond());
});

Deno.test("c100k reads keepalive timers from ss output", () => {
  assert.equal(ssSeconds("14sec"), 14);
  assert.equal(ssSeconds("1min12sec"), 72);
  assert.equal(ssSeconds("300ms"), 0.3);
  const census = parseSs([
    "0      0      127.0.0.1:4000 127.0.0.2:50000 timer:(keepalive,14sec,0)",
    "0      0      127.0.0.1:4000 127.0.0.3:50001 timer:(keepalive,15sec,0)",
    "0      0      127.0.0.1:4000 127.0.0.3:50002 timer:(keepalive,119min,0)",
    "0      0      127.0.0.1:4000 127.0.0.3:50003",
    "0      36     127.0.0.1:4000 127.0.0.3:50004 timer:(on,200ms,0)",
    "",
  ].join("\n"));
  assert.deepEqual(census, {
    sockets: 5,
    keepaliveOk: 2,
    timers: { keepalive: 3, none: 1, on: 1 },
  });
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
