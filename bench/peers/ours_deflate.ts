/**
 * Benchmark stand-in for `server.ts --compression` while server.ts has no
 * such flag: our library's serve() (from mod.ts) with permessage-deflate
 * on, echoing every message at `/echo`, with serve()'s defaults otherwise
 * (Go's keepalive, heartbeat every 54 s, 256-byte threshold, context
 * takeover where the client allows it).
 *
 * Usage: deno run --allow-net --allow-ffi --allow-read bench/peers/ours_deflate.ts [PORT]
 * Prints one JSON line `{"event":"listening","addr":"127.0.0.1:PORT"}` on stdout;
 * exits when stdin ends.
 *
 * @module
 */

import { serve } from "../../mod.ts";

const server = serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  compression: true,
  onListen: ({ hostname, port }) => {
    console.log(JSON.stringify({ event: "listening", addr: `${hostname}:${port}` }));
  },
}, async (req) => {
  if (req.url.pathname !== "/echo") return await req.reject(404, "not found");
  const ws = await req.upgrade();
  for await (const message of ws) await ws.send(message);
});

// The benchmark stops the peer by closing its stdin.
for await (const _ of Deno.stdin.readable) {
  // Discard.
}
await server.shutdown();
