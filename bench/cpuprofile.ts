/**
 * Summarises a V8 `.cpuprofile` (what `deno run --cpu-prof` writes): self time
 * per function and per source file, largest first.
 *
 * Usage: deno run --allow-read bench/cpuprofile.ts FILE.cpuprofile [TOP]
 *
 * @module
 */

/** One node of the profile's call tree. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** The parts of a `.cpuprofile` this summary reads. */
export interface CpuProfile {
  /** The call tree. */
  nodes: ProfileNode[];
  /** The node sampled at each tick. */
  samples: number[];
  /** µs since the previous sample, per sample. */
  timeDeltas: number[];
}

/** Self time of one function or file. */
export interface SelfTime {
  /** `function (file:line)`, or the file. */
  name: string;
  /** Self time in ms. */
  ms: number;
  /** Share of all sampled time, 0..1. */
  share: number;
}

function shortUrl(url: string): string {
  if (!url) return "(native)";
  return url.replace(/^file:\/\/.*?\/(lib|bench|server\.ts|client\.ts)/, "$1")
    .replace(/^ext:/, "ext:");
}

/** Self time per function and per file, largest first. */
export function selfTimes(profile: CpuProfile): { functions: SelfTime[]; files: SelfTime[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample's time is the gap to the next sample (V8's convention).
    const us = profile.timeDeltas[i + 1] ?? 0;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = shortUrl(url);
    const name = `${functionName || "(anonymous)"} (${where}${url ? `:${lineNumber + 1}` : ""})`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    file.set(where, (file.get(where) ?? 0) + us);
    total += us;
  }
  const list = (m: Map<string, number>) =>
    [...m].map(([name, us]) => ({ name, ms: us / 1000, share: total ? us / total : 0 }))
      .sort((a, b) => b.ms - a.ms);
  return { functions: list(fn), files: list(file) };
}

/** Renders the top `top` functions and files as text. */
export function formatSelfTimes(profile: CpuProfile, top = 25): string {
  const { functions, files } = selfTimes(profile);
  const line = (t: SelfTime) =>
    `${(t.share * 100).toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms  ${t.name}`;
  return [
    `top ${top} functions by self time:`,
    ...functions.slice(0, top).map(line),
    "",
    `top ${Math.min(top, 12)} files by self time:`,
    ...files.slice(0, Math.min(top, 12)).map(line),
  ].join("\n");
}

if (import.meta.main) {
  const [path, top] = Deno.args;
  if (!path) {
    console.error("usage: deno run --allow-read bench/cpuprofile.ts FILE.cpuprofile [TOP]");
    Deno.exit(2);
  }
  const profile = JSON.parse(await Deno.readTextFile(path)) as CpuProfile;
  console.log(formatSelfTimes(profile, top ? Number(top) : undefined));
}
