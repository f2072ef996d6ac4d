// Benchmark peer: npm `ws` on Node.js, echoing every message at /echo.
//
// Usage: node bench/peers/ws_node.cjs [PORT] [--deflate]
// Prints one JSON line {"event":"listening","addr":"127.0.0.1:PORT"} on stdout;
// exits when stdin ends. TCP keepalive is on with a 15 s idle time, the
// closest Node's API gets to Go's defaults. --deflate turns on
// permessage-deflate (`perMessageDeflate: true`, ws's defaults: context
// takeover where the client allows it, messages of 1 KiB and more compressed).
"use strict";

const http = require("node:http");
const { WebSocketServer } = require("ws");

const KEEPALIVE_IDLE_MS = 15_000;

const server = http.createServer((_req, res) => {
  res.writeHead(404).end("not found\n");
});
server.on("connection", (socket) => {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
});
const args = process.argv.slice(2);
const deflate = args.includes("--deflate");
const port = Number(args.find((a) => !a.startsWith("--")) ?? 0);
const wss = new WebSocketServer({ server, path: "/echo", perMessageDeflate: deflate });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(port, "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(JSON.stringify({ event: "listening", addr: `${address}:${port}` }));
});
process.stdin.resume();
process.stdin.on("end", () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
});
