// Benchmark peer: Bun's WebSocket server (Bun.serve, which is uWebSockets in
// C++), echoing every message with its type (text stays text, binary binary)
// at /echo, with Bun's defaults.
//
// Usage: bun bench/peers/bun_echo.js [PORT] [--deflate]
//
// --deflate turns on permessage-deflate (`perMessageDeflate: true`) and asks
// for every echo to go out compressed (`ws.send(message, true)`).
// Prints one JSON line {"event":"listening","addr":"127.0.0.1:PORT"} on stdout;
// exits when stdin ends. Bun comes from npm (@oven/bun-linux-x64), see bench/bun.ts.

const args = Bun.argv.slice(2);
const deflate = args.includes("--deflate");

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(args.find((a) => !a.startsWith("--")) ?? 0),
  fetch(request, server) {
    if (new URL(request.url).pathname === "/echo" && server.upgrade(request)) return;
    return new Response("not found\n", { status: 404 });
  },
  websocket: {
    perMessageDeflate: deflate,
    message(ws, message) {
      ws.send(message, deflate); // A string goes back as text, a Buffer as binary.
    },
  },
});
console.log(JSON.stringify({ event: "listening", addr: `${server.hostname}:${server.port}` }));

// The benchmark stops the peer by closing its stdin.
for await (const _ of Bun.stdin.stream()) {
  // Discard.
}
server.stop(true);
