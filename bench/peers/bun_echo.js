// Benchmark peer: Bun's WebSocket server (Bun.serve, which is uWebSockets in
// C++), echoing every message with its type (text stays text, binary binary)
// at /echo, with Bun's defaults.
//
// Usage: bun bench/peers/bun_echo.js [PORT]
// Prints one JSON line {"event":"listening","addr":"127.0.0.1:PORT"} on stdout;
// exits when stdin ends. Bun comes from npm (@oven/bun-linux-x64), see bench/bun.ts.

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(Bun.argv[2] ?? 0),
  fetch(request, server) {
    if (new URL(request.url).pathname === "/echo" && server.upgrade(request)) return;
    return new Response("not found\n", { status: 404 });
  },
  websocket: {
    message(ws, message) {
      ws.send(message); // A string goes back as text, a Buffer as binary.
    },
  },
});
console.log(JSON.stringify({ event: "listening", addr: `${server.hostname}:${server.port}` }));

// The benchmark stops the peer by closing its stdin.
for await (const _ of Bun.stdin.stream()) {
  // Discard.
}
server.stop(true);
