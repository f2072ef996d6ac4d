// An echo server on Deno's built-in `Deno.serve` + `Deno.upgradeWebSocket`, for
// the interop tests. See README.md. Deno's WebSocket cannot send pings and does
// not surface the ones it answers, so this peer has no `!ping` and prints no
// ping or pong events.

const supported: string[] = [];
for (let i = 0; i < Deno.args.length; i++) {
  if (Deno.args[i] === "--protocol") supported.push(Deno.args[++i]);
}

const print = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => print({ event: "listening", port }),
}, (req) => {
  const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const protocol = offered.find((p) => supported.includes(p));
  const { socket, response } = Deno.upgradeWebSocket(req, { protocol });
  socket.binaryType = "arraybuffer";
  // Deno 2.9.6 leaves a server socket's `protocol` at "" even when the 101
  // carries one, so print the one this server chose.
  socket.onopen = () => print({ event: "open", protocol: protocol ?? "" });
  socket.onmessage = (e) => {
    if (typeof e.data === "string" && e.data.startsWith("!close ")) {
      const { code, reason } = JSON.parse(e.data.slice(7));
      socket.close(code, reason);
    } else {
      socket.send(e.data);
    }
  };
  socket.onclose = (e) => print({ event: "close", code: e.code, reason: e.reason });
  return response;
});

Deno.addSignalListener("SIGTERM", () => server.shutdown());
