// An interop peer on npm `ws` (Node.js) with permessage-deflate on, for
// tests/deflate_interop_test.ts: an echo server or a scripted client.
//
//   node deflate_ws.mjs server [--no-context-takeover]
//   node deflate_ws.mjs client [--no-context-takeover] [--window-bits=N] URL < steps.json
//
// `perMessageDeflate: true` (ws's defaults: context takeover, 1 KiB
// threshold), or with --no-context-takeover
// `{ serverNoContextTakeover: true, clientNoContextTakeover: true }`;
// --window-bits=N asks for N-bit windows both ways (server_max_window_bits
// and client_max_window_bits).
// Prints one JSON object per line on stdout: listening {port},
// open {offered | extensions}, message {binary, data}, close {code, reason},
// error {message}. The client sends each step ({"text": S} or
// {"binary": B64}), waits for its echo, then closes with 1000.
import { WebSocket, WebSocketServer } from "ws";

const [role, ...rest] = process.argv.slice(2);
const noTakeover = rest.includes("--no-context-takeover");
const url = rest.find((a) => !a.startsWith("--"));
const bits = Number(rest.find((a) => a.startsWith("--window-bits="))?.split("=")[1] ?? 0);
const options = {
  ...(noTakeover ? { serverNoContextTakeover: true, clientNoContextTakeover: true } : {}),
  ...(bits ? { serverMaxWindowBits: bits, clientMaxWindowBits: bits } : {}),
};
const perMessageDeflate = Object.keys(options).length ? options : true;
const MAX_PAYLOAD = 64 * 1024 * 1024;

const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const message = (data, isBinary) => ({
  event: "message",
  binary: isBinary,
  data: isBinary ? Buffer.from(data).toString("base64") : data.toString("utf8"),
});

if (role === "server") {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    maxPayload: MAX_PAYLOAD,
    perMessageDeflate,
  });
  wss.on("listening", () => print({ event: "listening", port: wss.address().port }));
  wss.on("connection", (ws, req) => {
    print({
      event: "open",
      offered: req.headers["sec-websocket-extensions"] ?? "",
      extensions: ws.extensions,
    });
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on("close", (code, reason) => print({ event: "close", code, reason: reason.toString() }));
    ws.on("error", (err) => print({ event: "error", message: err.message }));
  });
  process.on("SIGTERM", () => process.exit(0));
} else if (role === "client") {
  // Decoded as one stream: a multi-byte character may straddle two chunks.
  process.stdin.setEncoding("utf8");
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const steps = JSON.parse(input);
  const ws = new WebSocket(url, { perMessageDeflate, maxPayload: MAX_PAYLOAD });
  const events = [];
  let wake = null;
  const push = (e) => {
    events.push(e);
    wake?.();
  };
  const next = async () => {
    while (events.length === 0) await new Promise((r) => wake = r);
    return events.shift();
  };
  ws.on("open", () => push({ event: "open", extensions: ws.extensions }));
  ws.on("message", (data, isBinary) => push(message(data, isBinary)));
  ws.on("close", (code, reason) => push({ event: "close", code, reason: reason.toString() }));
  ws.on("error", (err) => push({ event: "error", message: err.message }));
  let e = await next();
  print(e);
  if (e.event === "open") {
    for (const step of steps) {
      if ("text" in step) ws.send(step.text);
      else ws.send(Buffer.from(step.binary, "base64"));
      e = await next();
      print(e);
      if (e.event !== "message") break;
    }
    if (e.event === "message") {
      ws.close(1000);
      print(await next());
    }
  }
  // Let stdout drain first: a pipe may still hold a long line.
  process.stdout.write("", () => process.exit(0));
} else {
  print({ event: "error", message: `unknown role ${role}` });
  process.exit(2);
}
