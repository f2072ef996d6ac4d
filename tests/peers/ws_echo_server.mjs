// An echo server on npm `ws` (Node.js), for the interop tests. See README.md.
import { WebSocketServer } from "ws";

const supported = [];
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === "--protocol") supported.push(process.argv[++i]);
}

const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const b64 = (buf) => Buffer.from(buf).toString("base64");

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  maxPayload: 64 * 1024 * 1024,
  handleProtocols: (offered) => [...offered].find((p) => supported.includes(p)) ?? false,
});

wss.on("listening", () => print({ event: "listening", port: wss.address().port }));

wss.on("connection", (ws) => {
  print({ event: "open", protocol: ws.protocol });
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString("utf8");
    if (text?.startsWith("!close ")) {
      const { code, reason } = JSON.parse(text.slice(7));
      ws.close(code, reason);
    } else if (text?.startsWith("!ping ")) {
      ws.ping(Buffer.from(text.slice(6), "base64"));
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on("ping", (data) => print({ event: "ping", data: b64(data) }));
  ws.on("pong", (data) => print({ event: "pong", data: b64(data) }));
  ws.on(
    "close",
    (code, reason) => print({ event: "close", code, reason: reason.toString("utf8") }),
  );
  ws.on("error", (err) => print({ event: "error", message: err.message }));
});

process.on("SIGTERM", () => process.exit(0));
