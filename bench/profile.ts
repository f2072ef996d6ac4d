/**
 * Profiles our server under the small and rtt scenarios (and large, pipelined, deflate
 * or storm on request): starts `server.ts` with `deno run --cpu-prof`, drives it with
 * the Go load generator, stops it (SIGTERM, so the profile is written) and
 * prints the top self-time functions. deflate is the bench's deflate scenario
 * (1 KiB JSON, permessage-deflate) against our server with compression on;
 * storm is the bench's reconnect storm (10,000 clients through 200 dialers).
 *
 * Usage: deno run --allow-all bench/profile.ts [--duration 5s]
 *   [--scenarios small,rtt,large,pipelined,deflate,storm] [--out DIR] [--top N]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../app/common/duration.ts";
import {
  DEFAULT_STORM_CLIENTS,
  DEFAULT_STORM_DIALERS,
  JSON_LOAD,
  LARGE,
  PIPELINED,
  RTT,
  SMALL,
} from "./config.ts";
import { type CpuProfile, formatSelfTimes } from "./cpuprofile.ts";
import { ensureLoadgen, runPipelined, runRtt, runStorm, runThroughput } from "./loadgen.ts";
import { oursDeflate, repoPath, startEchoServer } from "./servers.ts";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5s" },
    out: { type: "string", default: repoPath("bench/results/profiles") },
    top: { type: "string", default: "25" },
    scenarios: { type: "string", default: "small,rtt" },
  },
});
const timing = { warmupMs: 1000, durationMs: parseDuration(v.duration) };
const SCENARIOS = ["small", "rtt", "large", "pipelined", "deflate", "storm"];
const bin = await ensureLoadgen((line) => console.error(line));

for (const scenario of v.scenarios.split(",")) {
  if (!SCENARIOS.includes(scenario)) {
    console.error(`profile: unknown scenario "${scenario}" (${SCENARIOS.join(", ")})`);
    Deno.exit(2);
  }
  const dir = `${v.out}/${scenario}-${Date.now()}`;
  await Deno.mkdir(dir, { recursive: true });
  const server = await startEchoServer("ours", {
    denoFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`],
    compression: scenario === "deflate" ? await oursDeflate() : undefined,
  });
  let figure: string;
  try {
    if (scenario === "small") {
      const r = await runThroughput(bin, server.url, SMALL, timing);
      figure = `${Math.round(r.msgs_per_s)} msg/s`;
    } else if (scenario === "deflate") {
      const r = await runThroughput(bin, server.url, JSON_LOAD, timing, undefined, {
        compress: true,
      });
      figure = `${Math.round(r.msgs_per_s)} msg/s, ${r.extensions}`;
    } else if (scenario === "large") {
      const r = await runThroughput(bin, server.url, LARGE, timing);
      figure = `${Math.round(r.mbytes_per_s)} MB/s`;
    } else if (scenario === "pipelined") {
      const r = await runPipelined(bin, server.url, PIPELINED, timing);
      figure = `${Math.round(r.mbytes_per_s)} MB/s, ${r.lost} echoes lost`;
    } else if (scenario === "storm") {
      const r = await runStorm(
        bin,
        server.url,
        DEFAULT_STORM_CLIENTS,
        DEFAULT_STORM_DIALERS,
        server.pid,
      );
      const cpu = r.cpu_s === null ? "" : `, ${Math.round(r.cpu_s * 1e6 / r.echoed)} µs CPU/conn`;
      figure = `${r.echoed} echoed in ${r.storm_s.toFixed(2)} s${cpu}`;
    } else {
      const r = await runRtt(bin, server.url, RTT.size, timing);
      figure = `p50 ${r.p50_us.toFixed(1)} µs, p99 ${r.p99_us.toFixed(1)} µs`;
    }
  } finally {
    await server.child.stop();
  }
  const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  const profile = JSON.parse(await Deno.readTextFile(`${dir}/${file.name}`)) as CpuProfile;
  console.log(`\n=== ${scenario} (${figure}, under --cpu-prof): ${dir}/${file.name}`);
  console.log(formatSelfTimes(profile, Number(v.top)));
}
