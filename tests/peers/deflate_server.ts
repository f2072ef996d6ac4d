/**
 * Our echo server with permessage-deflate on, in a process of its own, so a
 * test can read its memory from /proc (tests/deflate_interop_test.ts, the
 * bomb test). Unlike the other programs here it is ours: serve() from
 * mod.ts with `compression: true`.
 *
 *   deno run --allow-net --allow-ffi --allow-read deflate_server.ts [--max-message-size=BYTES]
 *
 * Prints one JSON object per line on stdout: listening {port}, open
 * {extensions}, close {code, reason, cause, clean}. Exits when stdin ends.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { serve } from "../../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { "max-message-size": { type: "string", default: String(16 * 1024 * 1024) } },
});

const print = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

const server = serve({
  hostname: "127.0.0.1",
  port: 0,
  compression: true,
  maxMessageSize: Number(values["max-message-size"]),
  pingInterval: 0,
  onListen: (addr) => print({ event: "listening", port: addr.port }),
}, async (req) => {
  const ws = await req.upgrade();
  print({ event: "open", extensions: ws.extensions });
  ws.closed.then(({ code, reason, cause, clean }) =>
    print({ event: "close", code, reason, cause, clean })
  );
  for await (const message of ws) await ws.send(message);
});

for await (const _ of Deno.stdin.readable) {
  // The test stops the server by closing stdin (or killing it).
}
await server.shutdown();
