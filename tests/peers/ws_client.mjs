// A scripted client on npm `ws` (Node.js), for the interop tests. See README.md.
import { WebSocket } from "ws";

const protocols = [];
let origin;
let url;
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === "--protocol") protocols.push(process.argv[++i]);
  else if (arg === "--origin") origin = process.argv[++i];
  else url = arg;
}

const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const b64 = (buf) => Buffer.from(buf).toString("base64");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const steps = JSON.parse(input);

// Events not yet consumed by a step, and the step waiting for one.
const queue = [];
let waiter = null;
const push = (event) => {
  print(event);
  if (waiter) {
    const w = waiter;
    waiter = null;
    w(event);
  } else queue.push(event);
};
const next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiter = r);

const ws = new WebSocket(url, protocols, { origin, maxPayload: 64 * 1024 * 1024 });
ws.on("open", () => push({ event: "open", protocol: ws.protocol }));
ws.on(
  "message",
  (data, isBinary) =>
    push({
      event: "message",
      binary: isBinary,
      data: isBinary ? b64(data) : data.toString("utf8"),
    }),
);
ws.on("pong", (data) => push({ event: "pong", data: b64(data) }));
ws.on("close", (code, reason) => push({ event: "close", code, reason: reason.toString("utf8") }));
ws.on("unexpected-response", (req, res) => {
  push({ event: "refused", status: res.statusCode });
  req.destroy();
});
ws.on("error", (err) => {
  if (!/Unexpected server response|socket hang up/.test(err.message)) {
    push({ event: "error", message: err.message });
  }
});

let event = await next();
if (event.event === "open") {
  for (const step of steps) {
    if ("command" in step) {
      ws.send(step.command);
      continue;
    }
    if ("text" in step) ws.send(step.text);
    else if ("binary" in step) ws.send(Buffer.from(step.binary, "base64"));
    else if ("ping" in step) ws.ping(Buffer.from(step.ping, "base64"));
    else if ("close" in step) ws.close(step.close.code, step.close.reason);
    event = await next();
    if (event.event === "close" || event.event === "error") break;
  }
}
if (ws.readyState !== WebSocket.CLOSED && event.event !== "refused") {
  ws.terminate();
}
process.exit(0);
