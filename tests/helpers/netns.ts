/**
 * Test helpers for cutting real links: a pair of network namespaces joined by
 * a veth pair (unique names per test, addresses only inside them), links set
 * down and up, and everything removed afterwards even when the test fails.
 * Programs run inside a namespace with {@linkcode ./process.ts}'s `Program`
 * and `startServer` and their `ns` option.
 *
 * @module
 */

import { missing } from "./needs.ts";
import { IP } from "./process.ts";

const decoder = new TextDecoder();

/** Runs `ip` with `args`; throws with its stderr when it fails. */
async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command(IP, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

/** Runs `ip` and ignores failure (for cleanup of things that may be gone). */
async function ipQuiet(...args: string[]): Promise<void> {
  try {
    await new Deno.Command(IP, { args, stdout: "null", stderr: "null" }).output();
  } catch {
    // ip itself is missing: nothing was created.
  }
}

let serial = 0;

/** A name unique to this process and call, short enough for an interface (15 chars). */
function uniqueTag(): string {
  return `${Deno.pid % 1_000_000}x${++serial}`;
}

let unavailable: Promise<string | null> | undefined;

/**
 * Null when namespaces can be made here; otherwise why not, for the test name.
 * Checked once, by creating and removing a namespace.
 */
export function netnsUnavailable(): Promise<string | null> {
  unavailable ??= (async () => {
    if (Deno.build.os !== "linux") return `needs Linux, not ${Deno.build.os}`;
    const noIp = missing("ip");
    if (noIp) return noIp;
    if (Deno.uid() !== 0) return "needs root for ip netns";
    const ns = `kwsprobe${uniqueTag()}`;
    try {
      await ip("netns", "add", ns);
      return null;
    } catch (err) {
      return `ip netns failed: ${err instanceof Error ? err.message : err}`;
    } finally {
      await ipQuiet("netns", "del", ns);
    }
  })();
  return unavailable;
}

/** One end of the pair: its namespace, its veth interface and its address. */
export interface Side {
  /** The namespace's name. */
  ns: string;
  /** The veth interface inside it. */
  veth: string;
  /** Its IPv4 address (on a /30 shared with the other side). */
  addr: string;
}

/**
 * Two fresh namespaces `a` and `b` joined by a veth pair on 10.213.X.0/30,
 * links up. Nothing is added to the namespace the tests run in. Disposing
 * kills whatever still runs inside them and deletes both (which removes the
 * veth pair).
 */
export class NetnsPair implements AsyncDisposable {
  /** The first end (e.g. the server). */
  readonly a: Side;
  /** The second end (e.g. the client). */
  readonly b: Side;

  private constructor(a: Side, b: Side) {
    this.a = a;
    this.b = b;
  }

  /** Creates the namespaces and the veth pair; on any failure removes what it made. */
  static async create(): Promise<NetnsPair> {
    const tag = uniqueTag();
    const x = (Deno.pid + serial * 7) % 250 + 1;
    const a: Side = { ns: `kws${tag}a`, veth: `kw${tag}a`, addr: `10.213.${x}.1` };
    const b: Side = { ns: `kws${tag}b`, veth: `kw${tag}b`, addr: `10.213.${x}.2` };
    const pair = new NetnsPair(a, b);
    try {
      await ip("netns", "add", a.ns);
      await ip("netns", "add", b.ns);
      await ip(
        "-n",
        a.ns,
        "link",
        "add",
        a.veth,
        "type",
        "veth",
        "peer",
        "name",
        b.veth,
        "netns",
        b.ns,
      );
      for (const side of [a, b]) {
        await ip("-n", side.ns, "addr", "add", `${side.addr}/30`, "dev", side.veth);
        await ip("-n", side.ns, "link", "set", side.veth, "up");
        await ip("-n", side.ns, "link", "set", "lo", "up");
      }
    } catch (err) {
      await pair[Symbol.asyncDispose]();
      throw err;
    }
    return pair;
  }

  /** Sets one side's veth link down (cut) or up. */
  async setLink(side: Side, up: boolean): Promise<void> {
    await ip("-n", side.ns, "link", "set", side.veth, up ? "up" : "down");
  }

  /** Sets a `net.*` sysctl inside one side's namespace only, e.g. `net.ipv4.tcp_keepalive_time`. */
  async sysctl(side: Side, name: string, value: string): Promise<void> {
    if (!/^net\.[\w.]+$/.test(name)) throw new Error(`not a per-namespace sysctl: ${name}`);
    const path = `/proc/sys/${name.replaceAll(".", "/")}`;
    await ip("netns", "exec", side.ns, "sh", "-c", `echo ${Number(value)} > ${path}`);
  }

  /** Kills what still runs in the namespaces (all started by this pair) and deletes them. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const side of [this.a, this.b]) {
      let pids: number[] = [];
      try {
        pids = (await ip("netns", "pids", side.ns)).split(/\s+/).filter(Boolean).map(Number);
      } catch {
        // The namespace was never made.
      }
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGCONT");
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      await ipQuiet("netns", "del", side.ns);
    }
  }
}
