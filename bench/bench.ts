/**
 * `deno task bench`: our echo server next to Deno's built-in WebSocket server,
 * npm `ws` on Node.js, Bun (uWebSockets) and gorilla's Go echo server, driven
 * by one neutral Go load generator (issues 6 and 14). Runs are interleaved
 * (A B C D E A B C D E …); the table shows medians, ratios and each server's
 * CPU time per message or connection, and for JSON text with and without
 * permessage-deflate the compression ratio on the wire (issue 15); the JSON goes to
 * bench/results/<timestamp>.json. `--scenarios c100k` holds 100,000
 * connections instead (see c100k.ts).
 *
 * @module
 */

import {
  BENCH_HELP,
  type BenchConfig,
  CLIENT,
  JSON_LOAD,
  LARGE,
  parseBenchArgs,
  PIPELINED,
  RSS_SETTLE_MS,
  RTT,
  type Scenario,
  SMALL,
} from "./config.ts";
import { BUN_VERSION, ensureBun } from "./bun.ts";
import { nofileLimit, runC100k } from "./c100k.ts";
import {
  DEBIAN_PACKAGES,
  ensureGorillaEcho,
  ensureLoadgen,
  goVersion,
  type PipelinedResult,
  runAccept,
  runIdle,
  runPipelined,
  runRtt,
  runStorm,
  runThroughput,
  type Timing,
} from "./loadgen.ts";
import { runMarked } from "./proc.ts";
import { alive, clockTicksPerSecond, treeRssBytes } from "./procfs.ts";
import { formatTable, type Sample, summarise } from "./report.ts";
import {
  allCpus,
  DEFLATE_LABELS,
  OURS_DEFLATE_PEER_LABEL,
  type OursDeflate,
  oursDeflate,
  type PeerPrograms,
  repoPath,
  type RunningServer,
  SERVER_LABELS,
  type ServerName,
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

/** What CPU time is: the caveat under the table. */
export const CPU_METRIC_NOTE = "CPU µs = utime + stime of the server's process tree " +
  "(/proc/PID/stat, clock ticks) over the counted window only, divided by the messages " +
  "echoed (or connections accepted) in it; lower is better.";

const log = (line: string) => console.error(line);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The server scenarios measured on the plain servers. */
type ServerScenario = Exclude<Scenario, "client" | "c100k" | "json" | "deflate">;

/** The scenarios measured on servers started with permessage-deflate on. */
const DEFLATE_SCENARIOS: Scenario[] = ["json", "deflate"];

/**
 * GET /healthz on a fresh connection every 100 ms until stopped; keeps the
 * slowest answer (a peer without /healthz answers something else, which
 * counts the same: the question is how long any answer takes).
 */
class HttpProbe {
  #worst = 0;
  #stopped = false;
  #loop: Promise<void>;

  constructor(port: number) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        const started = performance.now();
        try {
          const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
            signal: AbortSignal.timeout(30_000),
          });
          await res.body?.cancel();
        } catch {
          // No answer within 30 s counts as 30 s.
        }
        this.#worst = Math.max(this.#worst, performance.now() - started);
        await sleep(100);
      }
    })();
  }

  stop(): void {
    this.#stopped = true;
  }

  async worstMs(): Promise<number> {
    this.#stopped = true;
    await this.#loop;
    return this.#worst;
  }
}

/** µs of CPU per unit of work, or nothing when it was not measured or nothing was done. */
function perUnit(key: string, cpuSeconds: number | null, units: number): Record<string, number> {
  return cpuSeconds === null || !(units > 0) ? {} : { [key]: (cpuSeconds * 1e6) / units };
}

/** The pipelined outcome in words: whether every echo came back, and why connections ended. */
function pipelinedNote(r: PipelinedResult): string {
  const why = Object.entries(r.outcomes ?? {}).map(([k, n]) => `${n} × ${k}`).join(", ");
  if (r.lost === 0 && r.closes === 0 && r.dial_errors === 0) {
    return `every echo came back (${r.sent} sent, ${r.echoed} echoed)`;
  }
  return `${r.lost} echoes lost of ${r.sent} sent, ${r.closes} connection(s) ended` +
    (r.dial_errors ? `, ${r.dial_errors} failed dial(s)` : "") + (why ? `: ${why}` : "");
}

async function measureServer(
  scenario: ServerScenario,
  server: RunningServer,
  bin: string,
  config: BenchConfig,
): Promise<{ values: Record<string, number>; note?: string }> {
  const timing: Timing = { warmupMs: config.warmupMs, durationMs: config.durationMs };
  const pid = server.pid;
  switch (scenario) {
    case "small": {
      const r = await runThroughput(bin, server.url, SMALL, timing, pid);
      return {
        values: { msgs_per_s: r.msgs_per_s, ...perUnit("cpu_us_per_msg", r.cpu_s, r.messages) },
      };
    }
    case "large": {
      const r = await runThroughput(bin, server.url, LARGE, timing, pid);
      return {
        values: {
          mbytes_per_s: r.mbytes_per_s,
          msgs_per_s: r.msgs_per_s,
          ...perUnit("cpu_us_per_msg", r.cpu_s, r.messages),
        },
      };
    }
    case "rtt": {
      // Unpinned, a round trip takes ~20 µs or ~55 µs depending on whether the
      // scheduler puts both processes on one core: pin both to one CPU so the
      // figure is the software's cost, not the scheduler's coin toss.
      const pinned = await setAffinity(server.pid, RTT_CPU);
      try {
        const r = await runRtt(
          bin,
          server.url,
          RTT.size,
          timing,
          pinned ? RTT_CPU : undefined,
          pid,
        );
        return {
          values: {
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            samples: r.samples,
            pinned: Number(pinned),
            ...perUnit("cpu_us_per_msg", r.cpu_s, r.samples),
          },
        };
      } finally {
        if (pinned) await setAffinity(server.pid, allCpus());
      }
    }
    case "idle": {
      await sleep(RSS_SETTLE_MS);
      const before = treeRssBytes(pid);
      const r = await runIdle(bin, server.url, {
        conns: config.idleConns,
        dialers: config.idleDialers,
        serverPid: pid,
      }, async () => {
        await sleep(RSS_SETTLE_MS);
        return treeRssBytes(pid);
      });
      return {
        values: {
          rss_per_conn_kib: (r.measured - before) / config.idleConns / 1024,
          rss_before_mib: before / 2 ** 20,
          rss_after_mib: r.measured / 2 ** 20,
          accept_per_s: r.accept_per_s,
          ...perUnit("cpu_us_per_conn", r.cpu_s, config.idleConns),
        },
      };
    }
    case "accept": {
      const r = await runAccept(bin, server.url, config.acceptDialers, timing, pid);
      const note = r.errors ? `${r.errors} failed dial(s), first: ${r.first_error}` : undefined;
      return {
        values: {
          accepts_per_s: r.accepts_per_s,
          accepts: r.accepts,
          errors: r.errors,
          ...perUnit("cpu_us_per_conn", r.cpu_s, r.accepts),
        },
        note,
      };
    }
    case "storm": {
      // /healthz (any HTTP answer, for the peers) on a fresh connection every 100 ms meanwhile.
      const probe = new HttpProbe(server.port);
      const r = await runStorm(bin, server.url, config.stormClients, config.stormDialers, pid)
        .finally(() => probe.stop());
      const note = r.errors ? `${r.errors} client(s) failed, first: ${r.first_error}` : undefined;
      return {
        values: {
          storm_s: r.storm_s,
          ...perUnit("cpu_us_per_conn", r.cpu_s, r.echoed),
          p50_ms: r.p50_ms,
          p99_ms: r.p99_ms,
          healthz_worst_ms: await probe.worstMs(),
          echoed: r.echoed,
          errors: r.errors,
        },
        note,
      };
    }
    case "pipelined": {
      const load = { ...PIPELINED, size: config.pipelinedSize };
      const r = await runPipelined(bin, server.url, load, timing, pid);
      return {
        values: {
          mbytes_per_s: r.mbytes_per_s,
          msgs_per_s: r.msgs_per_s,
          ...perUnit("cpu_us_per_msg", r.cpu_s, r.messages),
          sent: r.sent,
          echoed: r.echoed,
          lost: r.lost,
          closes: r.closes,
          dial_errors: r.dial_errors,
        },
        note: pipelinedNote(r),
      };
    }
  }
}

/**
 * json (uncompressed) or deflate (permessage-deflate offered): JSON text
 * through a server that has compression on, with the bytes on the wire
 * counted by the load generator.
 */
async function measureDeflate(
  scenario: "json" | "deflate",
  server: RunningServer,
  bin: string,
  config: BenchConfig,
): Promise<{ values: Record<string, number>; note?: string }> {
  const timing: Timing = { warmupMs: config.warmupMs, durationMs: config.durationMs };
  const compress = scenario === "deflate";
  const r = await runThroughput(
    bin,
    server.url,
    { ...JSON_LOAD, size: config.jsonSize },
    timing,
    server.pid,
    { compress, wire: true },
  );
  const agreed = (r.extensions ?? "").startsWith("permessage-deflate");
  const values = {
    msgs_per_s: r.msgs_per_s,
    ...perUnit("cpu_us_per_msg", r.cpu_s, r.messages),
    ratio_s2c: r.wire_in ? (r.bytes ?? 0) / r.wire_in : NaN,
    ratio_c2s: r.wire_out ? (r.sent_bytes ?? 0) / r.wire_out : NaN,
    wire_s2c_bytes_per_msg: r.messages ? (r.wire_in ?? 0) / r.messages : NaN,
  };
  if (compress && !agreed) {
    return { values, note: "permessage-deflate was NOT agreed: these figures are uncompressed" };
  }
  if (!compress && agreed) {
    return { values, note: `compression agreed although not offered: ${r.extensions}` };
  }
  return { values, ...(compress ? { note: `agreed: ${r.extensions}` } : {}) };
}

async function measureClient(
  impl: "ours" | "builtin",
  url: string,
  config: BenchConfig,
): Promise<Record<string, number>> {
  const { result: r, cpuSeconds } = await runMarked(
    `client driver (${impl})`,
    Deno.execPath(),
    [
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
    ],
    config.warmupMs + config.durationMs,
    "self",
  );
  return {
    msgs_per_s: Number(r.msgs_per_s),
    ...perUnit("cpu_us_per_msg", cpuSeconds, Number(r.messages)),
  };
}

function brief(values: Record<string, number>): string {
  return Object.entries(values).map(([k, v]) => `${k}=${Math.round(v * 100) / 100}`).join(" ");
}

/** Runs every configured scenario `config.runs` times, interleaved; returns all samples. */
export async function runBench(
  config: BenchConfig,
  bin: string,
  programs: PeerPrograms,
  ours: OursDeflate = "peer",
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const serverScenarios = config.scenarios.filter((s) =>
    s !== "client" && s !== "c100k" && !DEFLATE_SCENARIOS.includes(s)
  ) as ServerScenario[];
  const deflateScenarios = config.scenarios.filter((s) => DEFLATE_SCENARIOS.includes(s)) as (
    | "json"
    | "deflate"
  )[];
  /** Keeps one server's figures for one scenario, and says them. */
  const record = (
    run: number,
    scenario: Scenario,
    server: RunningServer,
    { values, note }: { values: Record<string, number>; note?: string },
  ) => {
    samples.push({
      run,
      scenario,
      who: server.name,
      values,
      pid: server.pid,
      ...(note ? { note } : {}),
    });
    log(
      `run ${run}/${config.runs} ${scenario} ${server.name}: ${brief(values)}` +
        (note ? ` (${note})` : ""),
    );
  };
  for (let run = 1; run <= config.runs; run++) {
    if (serverScenarios.length) {
      // Fresh servers each run, so the idle scenario sees an unused heap.
      const servers: RunningServer[] = [];
      try {
        for (const name of config.servers) {
          servers.push(await startEchoServer(name, { workers: config.workers, programs }));
        }
        for (const scenario of serverScenarios) {
          for (const server of servers) {
            record(run, scenario, server, await measureServer(scenario, server, bin, config));
          }
        }
      } finally {
        await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
      }
    }
    if (deflateScenarios.length) {
      // Servers with compression on; deno's cannot, so it gives the json row only.
      const servers: RunningServer[] = [];
      try {
        for (const name of config.servers) {
          servers.push(
            await startEchoServer(name, {
              programs,
              workers: ours === "flag" ? config.workers : 1,
              compression: name === "deno" ? undefined : ours,
            }),
          );
        }
        for (const scenario of deflateScenarios) {
          for (const server of servers) {
            if (scenario === "deflate" && server.name === "deno") continue;
            record(run, scenario, server, await measureDeflate(scenario, server, bin, config));
          }
        }
      } finally {
        await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
      }
    }
    if (config.scenarios.includes("client")) {
      const echo = await startEchoServer("gorilla", { programs });
      try {
        for (const [who, impl] of [["ours", "ours"], ["deno", "builtin"]] as const) {
          const values = await measureClient(impl, echo.url, config);
          samples.push({ run, scenario: "client", who, values });
          log(`run ${run}/${config.runs} client ${impl}: ${brief(values)}`);
        }
      } finally {
        await echo[Symbol.asyncDispose]();
      }
    }
    if (config.scenarios.includes("c100k")) {
      const nofile = await nofileLimit();
      for (const name of config.c100kServers) {
        const r = await runC100k(name, config.c100kConns, bin, programs, nofile, log);
        samples.push({
          run,
          scenario: "c100k",
          who: name,
          values: r.values,
          note: r.note,
          ...("pid" in r ? { pid: r.pid } : {}),
        });
        log(`run ${run}/${config.runs} c100k ${name}: ${brief(r.values)} (${r.note})`);
      }
    }
  }
  return samples;
}

/** Which servers the configured scenarios start. */
function serversNeeded(config: BenchConfig): Set<ServerName> {
  const needed = new Set<ServerName>();
  if (config.scenarios.some((s) => s !== "client" && s !== "c100k")) {
    for (const s of config.servers) needed.add(s);
  }
  if (config.scenarios.includes("client")) needed.add("gorilla");
  if (config.scenarios.includes("c100k")) { for (const s of config.c100kServers) needed.add(s); }
  return needed;
}

async function commandLine(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** The Debian package version of `pkg`, or null. */
function debianVersion(pkg: string): Promise<string | null> {
  return commandLine("dpkg-query", ["-W", "-f=${Version}", pkg]);
}

async function machine(bunVersion: string | null) {
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
    clk_tck: clockTicksPerSecond(),
    deno: Deno.version.deno,
    node: await commandLine("node", ["--version"]),
    ws: wsPkg.version ?? null,
    bun: bunVersion,
    go: await goVersion(),
    gorilla: await debianVersion("golang-github-gorilla-websocket-dev"),
  };
}

/** Bytes as MiB or KiB or B. */
function sizeText(bytes: number): string {
  if (bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

/** Prints the outcome lines that a number does not tell (pipelined, accept errors, c100k timers). */
function printNotes(samples: Sample[]): void {
  const noted = samples.filter((s) => s.note);
  if (!noted.length) return;
  console.log();
  for (const s of noted) console.log(`${s.scenario} ${s.who} (run ${s.run}): ${s.note}`);
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
  clockTicksPerSecond(); // Fails early when libc cannot say sysconf(_SC_CLK_TCK).
  const bin = await ensureLoadgen(log);
  const needed = serversNeeded(config);
  const programs: PeerPrograms = {};
  if (needed.has("gorilla")) programs.gorilla = await ensureGorillaEcho(log);
  const bun = needed.has("bun") ? await ensureBun(log) : null;
  if (bun) programs.bun = bun.path;
  const deflating = config.scenarios.some((s) => DEFLATE_SCENARIOS.includes(s));
  const ours = deflating ? await oursDeflate() : "peer";
  const deflateLabels = deflating
    ? Object.fromEntries(
      config.servers.map((name) => [
        name,
        name === "ours" && ours === "peer" ? OURS_DEFLATE_PEER_LABEL : DEFLATE_LABELS[name],
      ]),
    )
    : null;
  const started = new Date();
  log(`load generator: ${LOADGEN_LABEL}`);
  log(CPU_NOTE);
  if (deflating && ours === "peer") log(`deflate: ours is ${OURS_DEFLATE_PEER_LABEL}`);
  const samples = await runBench(config, bin, programs, ours);
  const rows = summarise(samples);
  const dirty = await commandLine("git", [
    "-C",
    repoPath(""),
    "status",
    "--porcelain",
    "lib",
    "app",
    "server.ts",
    "bench",
  ]);
  const servers = [...needed].map((name) => [name, SERVER_LABELS[name]]);
  const result = {
    date: started.toISOString(),
    source: {
      commit: await commandLine("git", ["-C", repoPath(""), "rev-parse", "--short", "HEAD"]),
      uncommitted: dirty ? dirty.split("\n").map((l) => l.trim().replace(/^\S+\s+/, "")) : [],
    },
    machine: await machine(bun?.version ?? null),
    loadgen: LOADGEN_LABEL,
    loadgen_packages: DEBIAN_PACKAGES,
    bun_package: bun ? `${bun.package}@${BUN_VERSION} (npm)` : null,
    servers: Object.fromEntries(servers),
    deflate_servers: deflateLabels,
    deflate_scenarios: deflating
      ? `json and deflate: ${JSON_LOAD.conns} conns × ${JSON_LOAD.inflight} in flight × ` +
        `${config.jsonSize} B of JSON text (64 distinct documents), on servers started with ` +
        "permessage-deflate on; json: the load generator does not offer it, deflate: it does " +
        "(gorilla's client: no context takeover either way). ratio_s2c = payload bytes echoed " +
        "/ TCP bytes the server sent; ratio_c2s the same for the load generator's side."
      : null,
    client_scenario: "ours = lib/client/dial.ts client, deno = Deno's built-in WebSocket client; " +
      "both drive gorilla's echo server; CPU is the client process's",
    note: CPU_NOTE,
    cpu_metric: CPU_METRIC_NOTE,
    config,
    rows,
    samples,
  };
  await Deno.mkdir(config.outDir, { recursive: true });
  const file = `${config.outDir}/${started.toISOString().replace(/[:.]/g, "-")}.json`;
  await Deno.writeTextFile(file, JSON.stringify(result, null, 2) + "\n");
  const m = result.machine;
  console.log(
    `\nkeepalive-ws benchmark, ${result.date}, ${m.cpu} × ${m.cores} cores, ${m.memory_gib} GiB, ` +
      `Linux ${m.kernel}, Deno ${m.deno}, Node ${m.node}, ws ${m.ws}, Bun ${m.bun ?? "-"}, ` +
      `${m.go ?? "no go"}, gorilla ${m.gorilla ?? "-"}`,
  );
  console.log(`load generator: ${LOADGEN_LABEL}`);
  for (const [name, label] of servers) console.log(`  ${name}: ${label}`);
  if (deflateLabels) {
    console.log(`with permessage-deflate on (json, deflate):`);
    for (const [name, label] of Object.entries(deflateLabels)) console.log(`  ${name}: ${label}`);
  }
  const src = result.source;
  console.log(
    `source: ${src.commit}${
      src.uncommitted.length ? ` + uncommitted ${src.uncommitted.join(", ")}` : ""
    }`,
  );
  console.log(
    `median of ${config.runs} interleaved run(s), ${config.durationMs} ms counted after ` +
      `${config.warmupMs} ms warm-up; idle holds ${config.idleConns} connections; ` +
      `accept dials with ${config.acceptDialers} goroutines; pipelined: ${PIPELINED.conns} ` +
      `conns × bursts of ${PIPELINED.burst} × ${sizeText(config.pipelinedSize)}; ` +
      `our server runs with --workers ${config.workers}` +
      (config.scenarios.includes("c100k")
        ? `; c100k holds ${config.c100kConns} connections (ours with --workers auto, or more ` +
          `where the open-file limit needs it)`
        : ""),
  );
  console.log(`ratios are ours/peer (↑ higher is better, ↓ lower is better)`);
  if (samples.some((s) => s.scenario === "rtt" && s.values.pinned)) {
    console.log(`rtt: server and load generator pinned together to CPU ${RTT_CPU} (taskset)`);
  }
  console.log();
  console.log(formatTable(rows));
  printNotes(samples);
  if (result.deflate_scenarios) console.log(`\n${result.deflate_scenarios}`);
  if (config.scenarios.includes("client")) {
    console.log(
      `\nclient row: ours = our client (lib/client/dial.ts), deno = Deno's built-in WebSocket ` +
        `client, both driving gorilla's echo server; its CPU is the client's own.`,
    );
  }
  console.log(CPU_METRIC_NOTE);
  console.log(CPU_NOTE);
  console.log(`JSON: ${file}`);
  const left = samples.flatMap((s) => s.pid && alive(s.pid) ? [s.pid] : []);
  if (left.length) {
    console.error(`bench: server process(es) ${[...new Set(left)].join(", ")} still running`);
    return 1;
  }
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
