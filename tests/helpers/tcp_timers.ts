/**
 * The keepalive timers the kernel runs on TCP sockets, seen from outside the
 * process under test, in Linux's /proc/net/tcp and /proc/net/tcp6: no
 * program is needed. Their `tr tm->when` column is the same kernel fact `ss
 * -o` (iproute2) shows as `timer:(keepalive,…)`: timer 2 is a pending
 * `sk_timer`, which on an established socket is the keepalive timer, and
 * `when` is the time left in clock ticks (USER_HZ). `ss` asks the kernel
 * through netlink (inet_diag), which makes the same test; the ss reader is
 * kept here to check the two against each other (sockopt_test.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { clockTicksPerSecond } from "../../bench/procfs.ts";
import { pathOf } from "./needs.ts";

/** One socket as /proc/net/tcp{,6} lists it. */
export interface ProcTcpSocket {
  /** The local port. */
  localPort: number;
  /** The peer's port. */
  remotePort: number;
  /** The TCP state (1 = ESTABLISHED). */
  state: number;
  /** Which timer runs: 0 none, 1 retransmit, 2 keepalive (sk_timer), 3 TIME_WAIT, 4 zero window probe. */
  timer: number;
  /** Seconds left on that timer. */
  timerS: number;
}

/** TCP_ESTABLISHED in the kernel's `st` column. */
const ESTABLISHED = 0x01;
/** `tr` 2: sk_timer pending, which `ss` names keepalive. */
const KEEPALIVE = 2;

/** `sl: local rem st tx:rx tr:when …`, every number in hex. */
const LINE =
  /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+[0-9A-F]+:([0-9A-F]{4})\s+([0-9A-F]{2})\s+[0-9A-F]+:[0-9A-F]+\s+([0-9A-F]{2}):([0-9A-F]+)\s/i;

/** The sockets of one /proc/net/tcp or tcp6 text; `ticksPerSecond` is USER_HZ. */
export function parseProcNetTcp(text: string, ticksPerSecond: number): ProcTcpSocket[] {
  const [header, ...lines] = text.split("\n");
  assert.match(
    header,
    /^\s*sl\s+local_address\s+rem(?:ote)?_address\s+st\s+tx_queue\s+rx_queue\s+tr\s+tm->when/,
  );
  return lines.filter((l) => l.trim() !== "").map((line) => {
    const m = LINE.exec(line);
    assert.ok(m, `unexpected /proc/net/tcp line: ${line}`);
    return {
      localPort: parseInt(m[1], 16),
      remotePort: parseInt(m[2], 16),
      state: parseInt(m[3], 16),
      timer: parseInt(m[4], 16),
      timerS: parseInt(m[5], 16) / ticksPerSecond,
    };
  });
}

/** Every TCP socket of this network namespace, IPv4 and IPv6. */
export async function procTcpSockets(): Promise<ProcTcpSocket[]> {
  const sockets: ProcTcpSocket[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (err) {
      if (file.endsWith("6") && err instanceof Deno.errors.NotFound) continue; // No IPv6 here.
      throw err;
    }
    sockets.push(...parseProcNetTcp(text, clockTicksPerSecond()));
  }
  return sockets;
}

/** The established sockets with local port `sport` (and peer port `dport`, if given). */
async function established(sport: number, dport?: number): Promise<ProcTcpSocket[]> {
  return (await procTcpSockets()).filter((s) =>
    s.state === ESTABLISHED && s.localPort === sport &&
    (dport === undefined || s.remotePort === dport)
  );
}

/**
 * Seconds left on the keepalive timers of the established sockets with local
 * port `sport` (and peer port `dport`, if given), one per socket that has one.
 */
export async function keepAliveTimers(sport: number, dport?: number): Promise<number[]> {
  return (await established(sport, dport)).filter((s) => s.timer === KEEPALIVE).map((s) =>
    s.timerS
  );
}

/**
 * Seconds left on the keepalive timer of the one established socket from
 * local port `local` to peer port `peer`, or null when it has no keepalive
 * timer. Fails unless there is exactly one such socket.
 */
export async function keepAliveTimer(local: number, peer: number): Promise<number | null> {
  const sockets = await established(local, peer);
  assert.equal(sockets.length, 1, `one established socket ${local}→${peer}: ${sockets.length}`);
  return sockets[0].timer === KEEPALIVE ? sockets[0].timerS : null;
}

/**
 * The same as {@linkcode keepAliveTimers}, read by `ss -tnoi` (needs ss,
 * Debian package iproute2): only to check the /proc reader against.
 */
export async function ssKeepAliveTimers(sport: number, dport?: number): Promise<number[]> {
  const filter = dport === undefined
    ? `( sport = :${sport} )`
    : `( sport = :${sport} and dport = :${dport} )`;
  const out = await new Deno.Command(pathOf("ss"), {
    args: ["-tnoi", "state", "established", filter],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  // ss prints a timer as [Nmin][Nsec | N.]NNNms: "1min5sec", "14sec", "4.996ms" (4.996 s), "996ms".
  return [...text.matchAll(/timer:\(keepalive,([^,]*),/g)].map((m) => {
    const t = /^(?:(\d+)min)?(?:(\d+)(?:sec|\.(?=\d+ms$)))?(?:(\d+)ms)?$/.exec(m[1]);
    assert.ok(t, `unexpected ss timer ${m[1]}`);
    return Number(t[1] ?? 0) * 60 + Number(t[2] ?? 0) + Number(t[3] ?? 0) / 1000;
  });
}
