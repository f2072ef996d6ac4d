/**
 * Programs started in a process group of their own (`setsid`), as a
 * terminal, systemd or a container runtime would start them: a signal can
 * then go to the leader alone or to the whole group (Ctrl-C), and the test
 * can see whether anything of it is left. On dispose every process of the
 * group still alive gets SIGKILL, so a failing test leaves nothing behind.
 *
 * @module
 */

import { Program, type SpawnOptions } from "./process.ts";
import { waitFor } from "./wait.ts";

/** The pinned Deno of the README's `npx -y deno@X.Y.Z …` commands. */
export const NPX_DENO: string = (() => {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const m = /npx -y (deno@\d+\.\d+\.\d+)/.exec(readme);
  if (!m) throw new Error("README.md has no `npx -y deno@X.Y.Z` command");
  return m[1];
})();

/** Whether a program runs here (`--version` exits 0). */
export function runs(command: string): boolean {
  try {
    return new Deno.Command(command, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * How to exec a program as the leader of a new session: util-linux's
 * `setsid`, or, where it is missing (a machine with only Node.js and npm),
 * Python's os.setsid() and os.execvp(), which do the same in place.
 */
const SETSID: string[] = runs("setsid") ? ["setsid"] : [
  "python3",
  "-c",
  "import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])",
];

/** A process of a group, as `/proc` shows it. */
export interface Member {
  pid: number;
  state: string;
  cmd: string;
}

/** The processes of group `pgid` that are alive (zombies left out: they have ended). */
export function groupMembers(pgid: number): Member[] {
  const out: Member[] = [];
  for (const dir of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(dir.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${dir.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid || fields[0] === "Z") continue;
      const cmd = Deno.readTextFileSync(`/proc/${dir.name}/cmdline`).replaceAll("\0", " ");
      out.push({ pid: Number(dir.name), state: fields[0], cmd: cmd.trim() });
    } catch {
      // It ended while being read.
    }
  }
  return out;
}

/** Waits until nothing of group `pgid` is alive; rejects naming what is left. */
export async function groupGone(pgid: number, timeoutMs: number): Promise<void> {
  await waitFor(() => groupMembers(pgid).length === 0, `group ${pgid} to end`, timeoutMs, {
    context: () => `left: ${JSON.stringify(groupMembers(pgid))}`,
  });
}

/** A program leading a process group of its own. */
export class Group implements AsyncDisposable {
  /** The leader: the program itself (setsid execs it in place). */
  readonly proc: Program;

  private constructor(proc: Program) {
    this.proc = proc;
  }

  /** Starts `command args` as the leader of a new session and process group. */
  static start(command: string, args: string[], options: SpawnOptions = {}): Group {
    const [launcher, ...words] = SETSID;
    return new Group(Program.spawn(launcher, [...words, command, ...args], options));
  }

  /** The group's id, the leader's pid. */
  get pgid(): number {
    return this.proc.pid;
  }

  /** Sends `signal` to the leader alone. */
  killLeader(signal: Deno.Signal): void {
    Deno.kill(this.pgid, signal);
  }

  /** Sends `signal` to every process of the group, as a terminal's Ctrl-C does. */
  killGroup(signal: Deno.Signal): void {
    Deno.kill(-this.pgid, signal);
  }

  /** SIGKILL to whatever is left, and the leader reaped. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      Deno.kill(-this.pgid, "SIGKILL");
    } catch {
      // Nothing is left.
    }
    await this.proc[Symbol.asyncDispose]();
  }
}
