/**
 * Benchmark peer: Deno's built-in WebSocket server (`Deno.serve` +
 * `Deno.upgradeWebSocket`) echoing every message at `/echo`.
 *
 * Usage: deno run --allow-net bench/peers/deno_builtin.ts [PORT]
 * Prints one JSON line `{"event":"listening","addr":"127.0.0.1:PORT"}` on stdout;
 * exits when stdin ends.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? 0);

const server = Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ hostname, port }) => {
    console.log(JSON.stringify({ event: "listening", addr: `${hostname}:${port}` }));
  },
}, (request) => {
  if (new URL(request.url).pathname !== "/echo") {
    return new Response("not found\n", { status: 404 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});

// The benchmark stops the peer by closing its stdin.
for await (const _ of Deno.stdin.readable) {
  // Discard.
}
await server.shutdown();
