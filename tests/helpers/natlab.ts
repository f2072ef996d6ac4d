/**
 * The NAT lab: a NAT with an idle timeout between a client and a server,
 * built from three fresh network namespaces, for the tests and for people
 * (`deno task natlab`, see `tools/natlab.ts`).
 *
 * ```text
 *   client ns                 router ns                        server ns
 *   10.214.X.2 ── veth ── 10.214.X.1 | 10.215.X.1 ── veth ── 10.215.X.2
 *                         masquerade towards the server;
 *                         forward: new flows from the client side, then
 *                         established/related only (policy drop);
 *                         conntrack forgets an idle TCP flow after N s
 * ```
 *
 * What makes the NAT forget silently, as a home router or a cloud NAT
 * gateway does: `nf_conntrack_tcp_timeout_established` set to N seconds and
 * `nf_conntrack_tcp_loose=0` (otherwise conntrack adopts a mid-stream
 * packet as a new flow), both inside the router's namespace only. A packet
 * of a forgotten flow is then neither established nor new, and the policy
 * drops it: the sender hears nothing.
 *
 * Only private addresses, only inside the lab's own namespaces; disposing
 * kills whatever still runs in them and deletes them (with their veths).
 *
 * @module
 */

import { missing, pathOf } from "./needs.ts";
import { netnsUnavailable } from "./netns.ts";
import { IP } from "./process.ts";

/** Where Debian's nftables installs `nft`. */
export const NFT: string = pathOf("nft");
/** Where Debian's conntrack installs `conntrack` (optional: only for showing flows). */
export const CONNTRACK = "/usr/sbin/conntrack";
/** The NAT's idle timeout unless told otherwise (what natlab.md measured with). */
export const DEFAULT_NAT_TIMEOUT_S = 5;

const decoder = new TextDecoder();

/** Runs `command` (optionally inside namespace `ns`, with `input` on stdin); throws with its stderr on failure. */
async function run(
  command: string,
  args: string[],
  options: { ns?: string; input?: string } = {},
): Promise<string> {
  const argv = options.ns ? ["netns", "exec", options.ns, command, ...args] : args;
  const child = new Deno.Command(options.ns ? IP : command, {
    args: argv,
    stdin: options.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.input));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    const what = [options.ns ? `(in ${options.ns})` : "", command, ...args].join(" ").trim();
    throw new Error(`${what}: ${decoder.decode(out.stderr).trim() || `exit ${out.code}`}`);
  }
  return decoder.decode(out.stdout);
}

/** `ip ARGS`. */
function ip(...args: string[]): Promise<string> {
  return run(IP, args);
}

let serial = 0;

/** A tag unique to this process and call; short enough for interface names (15 chars). */
function uniqueTag(): string {
  return `${Deno.pid % 100_000}n${++serial}`;
}

/** Null when the lab can be built here; otherwise why not, for a test's name. */
export async function natLabUnavailable(): Promise<string | null> {
  const netns = await netnsUnavailable();
  return netns ?? missing("nft");
}

/** One end host of the lab. */
export interface LabHost {
  /** Its namespace. */
  ns: string;
  /** Its address. */
  addr: string;
}

/** The router between them. */
export interface LabRouter {
  /** Its namespace. */
  ns: string;
  /** Its interface towards the client. */
  clientSide: string;
  /** Its interface towards the server. */
  serverSide: string;
}

/** Options of {@linkcode NatLab.create}. */
export interface NatLabOptions {
  /** Seconds after which the NAT forgets an idle established TCP flow (default 5). */
  natTimeoutS?: number;
}

/** The nftables ruleset of the router: masquerade, and a stateful forward filter. */
export function routerRuleset(router: LabRouter): string {
  return `table ip nat {
  chain post {
    type nat hook postrouting priority 100; policy accept;
    oifname "${router.serverSide}" masquerade
  }
}
table ip filter {
  chain fw {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ct state new iifname "${router.clientSide}" accept
  }
}
`;
}

/** A client, a NAT router with an idle timeout, and a server, each in its own namespace. */
export class NatLab implements AsyncDisposable {
  /** Where the client runs. */
  readonly client: LabHost;
  /** The NAT. */
  readonly router: LabRouter;
  /** Where the server runs. */
  readonly server: LabHost;
  /** The NAT's idle timeout, in seconds. */
  readonly natTimeoutS: number;

  private constructor(client: LabHost, router: LabRouter, server: LabHost, natTimeoutS: number) {
    this.client = client;
    this.router = router;
    this.server = server;
    this.natTimeoutS = natTimeoutS;
  }

  /** Builds the lab; on any failure removes what it made and throws. */
  static async create(options: NatLabOptions = {}): Promise<NatLab> {
    const natTimeoutS = options.natTimeoutS ?? DEFAULT_NAT_TIMEOUT_S;
    if (!Number.isInteger(natTimeoutS) || natTimeoutS < 1) {
      throw new RangeError(`the NAT timeout is a whole number of seconds, not ${natTimeoutS}`);
    }
    const tag = uniqueTag();
    const x = (Deno.pid + serial * 7) % 250 + 1;
    const client: LabHost = { ns: `kwl${tag}c`, addr: `10.214.${x}.2` };
    const server: LabHost = { ns: `kwl${tag}s`, addr: `10.215.${x}.2` };
    const router: LabRouter = {
      ns: `kwl${tag}r`,
      clientSide: `kl${tag}rc`,
      serverSide: `kl${tag}rs`,
    };
    const lab = new NatLab(client, router, server, natTimeoutS);
    try {
      for (const ns of [client.ns, router.ns, server.ns]) {
        await ip("netns", "add", ns);
        await ip("-n", ns, "link", "set", "lo", "up");
      }
      const hosts: [LabHost, string, string][] = [
        [client, router.clientSide, `kl${tag}c`],
        [server, router.serverSide, `kl${tag}s`],
      ];
      for (const [host, routerSide, hostSide] of hosts) {
        const gateway = host.addr.replace(/\.2$/, ".1");
        await ip(
          "-n",
          router.ns,
          "link",
          "add",
          routerSide,
          "type",
          "veth",
          "peer",
          "name",
          hostSide,
          "netns",
          host.ns,
        );
        await ip("-n", router.ns, "addr", "add", `${gateway}/30`, "dev", routerSide);
        await ip("-n", router.ns, "link", "set", routerSide, "up");
        await ip("-n", host.ns, "addr", "add", `${host.addr}/30`, "dev", hostSide);
        await ip("-n", host.ns, "link", "set", hostSide, "up");
        await ip("-n", host.ns, "route", "add", "default", "via", gateway);
      }
      await lab.#sysctl("net.ipv4.ip_forward", 1);
      await run(NFT, ["-f", "-"], { ns: router.ns, input: routerRuleset(router) });
      // Conntrack's sysctls exist in a namespace once its table is in use (the ruleset above).
      await lab.#sysctl("net.netfilter.nf_conntrack_tcp_loose", 0);
      await lab.setNatTimeout(natTimeoutS);
    } catch (err) {
      await lab[Symbol.asyncDispose]();
      throw err;
    }
    return lab;
  }

  /** Sets how long the NAT keeps an idle established TCP flow (seconds). */
  async setNatTimeout(seconds: number): Promise<void> {
    await this.#sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", seconds);
    (this as { natTimeoutS: number }).natTimeoutS = seconds;
  }

  /** The router's value of a `net.*` sysctl (its own namespace's). */
  async routerSysctl(name: string): Promise<number> {
    return Number(
      (await run("cat", [`/proc/sys/${name.replaceAll(".", "/")}`], { ns: this.router.ns }))
        .trim(),
    );
  }

  /** The flows the NAT tracks now (`conntrack -L`), or why they cannot be listed. */
  async flows(): Promise<string> {
    try {
      return await run(CONNTRACK, ["-L", "-p", "tcp"], { ns: this.router.ns });
    } catch (err) {
      return `(conntrack -L: ${err instanceof Error ? err.message : err})`;
    }
  }

  /** Writes a `net.*` sysctl inside the router's namespace only. */
  async #sysctl(name: string, value: number): Promise<void> {
    if (!/^net\.[\w.]+$/.test(name)) throw new Error(`not a per-namespace sysctl: ${name}`);
    const path = `/proc/sys/${name.replaceAll(".", "/")}`;
    await run("sh", ["-c", `echo ${Number(value)} > ${path}`], { ns: this.router.ns });
  }

  /** Kills what still runs in the lab's namespaces and deletes them (their veths go with them). */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const ns of [this.client.ns, this.router.ns, this.server.ns]) {
      let pids: number[] = [];
      try {
        pids = (await ip("netns", "pids", ns)).split(/\s+/).filter(Boolean).map(Number);
      } catch {
        // Never made.
      }
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGCONT");
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      try {
        await ip("netns", "del", ns);
      } catch {
        // Never made, or gone.
      }
    }
  }
}
