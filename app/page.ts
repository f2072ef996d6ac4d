/**
 * The page served at `/`: a small echo console for a browser, in the spirit
 * of gorilla/websocket's echo example. It connects to `/echo` on the same
 * host, shows the connection state and each message, and lets a person type.
 *
 * @module
 */

/** The HTML of the echo console, self-contained (no external resources). */
export const ECHO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keepalive-ws echo</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; padding: 0 1rem; }
  #state { font-weight: 600; }
  #state.open { color: #17803d; } #state.closed { color: #b42318; }
  #log { border: 1px solid #ccc; height: 20rem; overflow-y: auto; padding: .5rem; font-family: ui-monospace, monospace; white-space: pre-wrap; }
  .out { color: #1d4ed8; } .in { color: #111; } .sys { color: #666; font-style: italic; }
  form { display: flex; gap: .5rem; margin-top: .5rem; } #msg { flex: 1; padding: .3rem; }
</style>
</head>
<body>
<h1>keepalive-ws echo</h1>
<p>Connection: <span id="state">connecting</span> <button id="reconnect" type="button" hidden>Reconnect</button></p>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="msg" autocomplete="off" placeholder="Type a message and press Enter" autofocus>
<button id="send" type="submit">Send</button></form>
<script>
"use strict";
const log = document.getElementById("log");
const state = document.getElementById("state");
const input = document.getElementById("msg");
const again = document.getElementById("reconnect");
let ws;
function line(cls, text) {
  const div = document.createElement("div");
  div.className = cls;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
}
function setState(text, cls) { state.textContent = text; state.className = cls; }
function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/echo";
  ws = new WebSocket(url);
  setState("connecting", "");
  again.hidden = true;
  ws.onopen = () => { setState("open", "open"); line("sys", "connected to " + url); };
  ws.onmessage = (e) => line("in", "< " + (typeof e.data === "string" ? e.data : "[binary]"));
  ws.onclose = (e) => {
    setState("closed (" + e.code + (e.reason ? " " + e.reason : "") + ")", "closed");
    line("sys", "closed: " + e.code);
    again.hidden = false;
  };
  ws.onerror = () => line("sys", "error");
}
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!ws || ws.readyState !== WebSocket.OPEN || input.value === "") return;
  ws.send(input.value);
  line("out", "> " + input.value);
  input.value = "";
});
again.addEventListener("click", connect);
connect();
</script>
</body>
</html>
`;
