/**
 * `deno task bench`: our echo server next to Deno's built-in WebSocket server
 * and npm `ws` on Node.js, driven by one neutral Go load generator (issue 6).
 * Runs are interleaved (A B C A B C …); the table shows medians and ratios;
 * the JSON goes to bench/results/<timestamp>.json.
 *
 * @module
 */

import {
  BENCH_HELP,
  type BenchConfig,
  CLIENT,
  LARGE,
  parseBenchArgs,
  RSS_SETTLE_MS,
  RTT,
  type Scenario,
  SMALL,
} from "./config.ts";
import {
  DEBIAN_PACKAGES,
  ensureLoadgen,
  goVersion,
  runIdle,
  runRtt,
  runThroughput,
  startGorillaEcho,
  type Timing,
} from "./loadgen.ts";
import { runJson } from "./proc.ts";
import { formatTable, type Sample, summarise } from "./report.ts";
import {
  allCpus,
  repoPath,
  rssBytes,
  type RunningServer,
  SERVER_LABELS,
  SERVER_NAMES,
  setAffinity,
  startEchoServer,
} from "./servers.ts";

/** The CPU that the rtt scenario pins the server and the load generator to. */
const RTT_CPU = "0";

/** What the load generator is, for the output. */
export const LOADGEN_LABEL = "Go gorilla/websocket (bench/loadgen, Debian golang-go + " +
  "golang-github-gorilla-websocket-dev)";

/** The caveat every result carries. */
export const CPU_NOTE = "The load generator and the server under test share this machine's " +
  "cores; on 2 cores they compete for CPU, so figures are ratios of one run, not capacities.";

const log = (line: string) => console.error(line);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureServer(
  scenario: Exclude<Scenario, "client">,
  server: RunningServer,
  bin: string,
  config: BenchConfig,
): Promise<Record<string, number>> {
  const timing: Timing = { warmupMs: config.warmupMs, durationMs: config.durationMs };
  switch (scenario) {
    case "small": {
      const r = await runThroughput(bin, server.url, SMALL, timing);
      return { msgs_per_s: r.msgs_per_s };
    }
    case "large": {
      const r = await runThroughput(bin, server.url, LARGE, timing);
      return { mbytes_per_s: r.mbytes_per_s, msgs_per_s: r.msgs_per_s };
    }
    case "rtt": {
      // Unpinned, a round trip takes ~20 µs or ~55 µs depending on whether the
      // scheduler puts both processes on one core: pin both to one CPU so the
      // figure is the software's cost, not the scheduler's coin toss.
      const pinned = await setAffinity(server.pid, RTT_CPU);
      try {
        const r = await runRtt(bin, server.url, RTT.size, timing, pinned ? RTT_CPU : undefined);
        return { p50_us: r.p50_us, p99_us: r.p99_us, samples: r.samples, pinned: Number(pinned) };
      } finally {
        if (pinned) await setAffinity(server.pid, allCpus());
      }
    }
    case "idle": {
      await sleep(RSS_SETTLE_MS);
      const before = rssBytes(server.pid);
      const r = await runIdle(bin, server.url, config.idleConns, config.idleDialers, async () => {
        await sleep(RSS_SETTLE_MS);
        return rssBytes(server.pid);
      });
      return {
        rss_per_conn_kib: (r.measured - before) / config.idleConns / 1024,
        rss_before_mib: before / 2 ** 20,
        rss_after_mib: r.measured / 2 ** 20,
        accept_per_s: r.accept_per_s,
      };
    }
  }
}

async function measureClient(
  impl: "ours" | "builtin",
  url: string,
  config: BenchConfig,
): Promise<Record<string, number>> {
  const r = await runJson(`client driver (${impl})`, Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-ffi",
    "--allow-read",
    repoPath("bench/client_driver.ts"),
    `--impl=${impl}`,
    `--url=${url}`,
    `--conns=${CLIENT.conns}`,
    `--inflight=${CLIENT.inflight}`,
    `--size=${CLIENT.size}`,
    `--warmup-ms=${config.warmupMs}`,
    `--duration-ms=${config.durationMs}`,
  ]);
  return { msgs_per_s: Number(r.msgs_per_s) };
}

function brief(values: Record<string, number>): string {
  return Object.entries(values).map(([k, v]) => `${k}=${Math.round(v * 100) / 100}`).join(" ");
}

/** Runs every configured scenario `config.runs` times, interleaved; returns all samples. */
export async function runBench(config: BenchConfig, bin: string): Promise<Sample[]> {
  const samples: Sample[] = [];
  const serverScenarios = config.scenarios.filter((s) => s !== "client") as Exclude<
    Scenario,
    "client"
  >[];
  for (let run = 1; run <= config.runs; run++) {
    if (serverScenarios.length) {
      // Fresh servers each run, so the idle scenario sees an unused heap.
      const servers: RunningServer[] = [];
      try {
        for (const name of SERVER_NAMES) {
          servers.push(await startEchoServer(name, { workers: config.workers }));
        }
        for (const scenario of serverScenarios) {
          for (const server of servers) {
            const values = await measureServer(scenario, server, bin, config);
            samples.push({ run, scenario, who: server.name, values, pid: server.pid });
            log(`run ${run}/${config.runs} ${scenario} ${server.name}: ${brief(values)}`);
          }
        }
      } finally {
        await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
      }
    }
    if (config.scenarios.includes("client")) {
      const echo = await startGorillaEcho(bin);
      try {
        for (const [who, impl] of [["ours", "ours"], ["deno", "builtin"]] as const) {
          const values = await measureClient(impl, echo.url, config);
          samples.push({ run, scenario: "client", who, values });
          log(`run ${run}/${config.runs} client ${impl}: ${brief(values)}`);
        }
      } finally {
        await echo.child.stop();
      }
    }
  }
  return samples;
}

async function commandLine(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

async function machine() {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? Deno.build.arch;
  const wsPkg = JSON.parse(
    await Deno.readTextFile(repoPath("node_modules/ws/package.json")).catch(() => "{}"),
  );
  return {
    cpu: model,
    cores: navigator.hardwareConcurrency,
    memory_gib: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    node: await commandLine("node", ["--version"]),
    ws: wsPkg.version ?? null,
    go: await goVersion(),
  };
}

async function main(): Promise<number> {
  let config: BenchConfig | null;
  try {
    config = parseBenchArgs(Deno.args, repoPath("bench/results"));
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : err}`);
    return 2;
  }
  if (!config) {
    console.log(BENCH_HELP);
    return 0;
  }
  const bin = await ensureLoadgen(log);
  const started = new Date();
  log(`load generator: ${LOADGEN_LABEL}`);
  log(CPU_NOTE);
  const samples = await runBench(config, bin);
  const rows = summarise(samples);
  const dirty = await commandLine("git", [
    "-C",
    repoPath(""),
    "status",
    "--porcelain",
    "lib",
    "server.ts",
  ]);
  const result = {
    date: started.toISOString(),
    source: {
      commit: await commandLine("git", ["-C", repoPath(""), "rev-parse", "--short", "HEAD"]),
      uncommitted: dirty ? dirty.split("\n").map((l) => l.trim().replace(/^\S+\s+/, "")) : [],
    },
    machine: await machine(),
    loadgen: LOADGEN_LABEL,
    loadgen_packages: DEBIAN_PACKAGES,
    servers: SERVER_LABELS,
    client_scenario: "ours = lib/ws/dial.ts client, deno = Deno's built-in WebSocket client; " +
      "both drive gorilla's echo server",
    note: CPU_NOTE,
    config,
    rows,
    samples,
  };
  await Deno.mkdir(config.outDir, { recursive: true });
  const file = `${config.outDir}/${started.toISOString().replace(/[:.]/g, "-")}.json`;
  await Deno.writeTextFile(file, JSON.stringify(result, null, 2) + "\n");
  const m = result.machine;
  console.log(
    `\nkeepalive-ws benchmark, ${result.date}, ${m.cpu} × ${m.cores} cores, Linux ${m.kernel}, ` +
      `Deno ${m.deno}, Node ${m.node}, ws ${m.ws}`,
  );
  console.log(`load generator: ${LOADGEN_LABEL}`);
  const src = result.source;
  console.log(
    `source: ${src.commit}${
      src.uncommitted.length ? ` + uncommitted ${src.uncommitted.join(", ")}` : ""
    }`,
  );
  console.log(
    `median of ${config.runs} interleaved run(s), ${config.durationMs} ms counted after ` +
      `${config.warmupMs} ms warm-up; idle holds ${config.idleConns} connections; ` +
      `our server runs with --workers ${config.workers}`,
  );
  console.log(`ratios are ours/peer (↑ higher is better, ↓ lower is better)`);
  if (samples.some((s) => s.scenario === "rtt" && s.values.pinned)) {
    console.log(`rtt: server and load generator pinned together to CPU ${RTT_CPU} (taskset)`);
  }
  console.log();
  console.log(formatTable(rows));
  console.log(
    `\nclient row: ours = our client (lib/ws/dial.ts), deno = Deno's built-in WebSocket client, ` +
      `both driving gorilla's echo server.`,
  );
  console.log(CPU_NOTE);
  console.log(`JSON: ${file}`);
  return 0;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : err}`);
    code = 1;
  }
  Deno.exit(code);
}
