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
