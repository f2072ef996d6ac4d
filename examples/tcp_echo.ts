/**
 * A plain TCP echo server whose every connection gets Go's keepalive
 * through `tuneSocket()` — no WebSocket involved. The same call tunes a
 * Postgres or Redis client's `Deno.TcpConn`.
 *
 *     deno run --allow-net --allow-ffi examples/tcp_echo.ts [port]
 *
 * It prints one line per connection with the options the kernel reports.
 *
 * @module
 */

import { type SocketOptions, tuneSocket } from "../mod.ts";

/** Serves TCP echo on `listener`; `onTuned` hears what each socket ended up with. */
export async function serveTcpEcho(
  listener: Deno.TcpListener,
  onTuned: (remote: Deno.NetAddr, options: SocketOptions) => void,
): Promise<void> {
  for await (const conn of listener) {
    onTuned(conn.remoteAddr, tuneSocket(conn)); // on, 15 s / 15 s / 9, read back
    (async () => {
      try {
        await conn.readable.pipeTo(conn.writable);
      } catch {
        // The peer went away.
      }
    })();
  }
}

if (import.meta.main) {
  const listener = Deno.listen({ port: Number(Deno.args[0] ?? 7007) });
  console.log(`tcp echo on ${listener.addr.hostname}:${listener.addr.port}`);
  await serveTcpEcho(listener, (remote, o) => {
    console.log(
      `${remote.hostname}:${remote.port} keepalive=${o.keepAlive} idle=${o.idle}ms ` +
        `interval=${o.interval}ms count=${o.count} verified=${o.verified}`,
    );
  });
}
