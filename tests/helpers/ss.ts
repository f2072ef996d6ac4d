/**
 * What `ss` (iproute2) shows about TCP sockets: the keepalive timers in
 * force, seen from outside the process under test.
 *
 * @module
 */

import assert from "node:assert/strict";

/**
 * Seconds left on the keepalive timers `ss` shows for established sockets
 * with local port `sport` (and remote port `dport`, if given), one per socket.
 */
export async function ssKeepAliveTimers(sport: number, dport?: number): Promise<number[]> {
  const filter = dport === undefined
    ? `( sport = :${sport} )`
    : `( sport = :${sport} and dport = :${dport} )`;
  const out = await new Deno.Command("ss", {
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

/**
 * Seconds left on the keepalive timer of the one established socket from
 * local port `local` to peer port `peer`, or null when it has no keepalive
 * timer. Fails unless `ss` shows exactly one such socket.
 */
export async function ssKeepAliveTimer(local: number, peer: number): Promise<number | null> {
  const out = await new Deno.Command("ss", {
    args: ["-tnH", "state", "established", `( sport = :${local} and dport = :${peer} )`],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const sockets = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim());
  assert.equal(sockets.length, 1, `ss shows one socket ${local}→${peer}:\n${sockets.join("\n")}`);
  const timers = await ssKeepAliveTimers(local, peer);
  assert.ok(timers.length <= 1, `one socket, ${timers.length} keepalive timers`);
  return timers[0] ?? null;
}
