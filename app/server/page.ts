/**
 * The page served at `/`: a small echo console for a browser, in the spirit
 * of gorilla/websocket's echo example, and the icon at `/favicon.ico`.
 *
 * The page uses the browser's own `WebSocket` against `/echo` on the same
 * host. It shows the settings in force (from `/info`: the keepalive read
 * back from the server's socket, the heartbeat, the largest message), a live
 * round-trip time, message and byte counts each way, timestamps, and on a
 * close the code, its name, the reason and the cause as far as a browser can
 * tell (it sees only the code, the reason and whether the close was clean;
 * the server's own cause is in its `close` log line). It reconnects on its
 * own with backoff, like `client.ts --reconnect`: after anything but its own
 * close or a clean 1000.
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
<link rel="icon" href="/favicon.ico">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin-bottom: .5rem; }
  #state { font-weight: 600; }
  #state.open { color: #17803d; } #state.closed { color: #b42318; } #state.waiting { color: #9a6700; }
  #since, .note { color: #666; font-size: .9em; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .8rem; margin: .6rem 0; }
  dt { color: #555; } dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
  #log { border: 1px solid #ccc; height: 18rem; overflow-y: auto; overflow-x: hidden; padding: .5rem;
         font-family: ui-monospace, monospace; font-size: 13px; }
  #log div { display: grid; grid-template-columns: max-content 1ch minmax(0, 1fr); column-gap: .6ch; }
  #log .text { white-space: pre-wrap; overflow-wrap: anywhere; }
  #log time { color: #999; }
  .out { color: #1d4ed8; } .in { color: #111; } .sys { color: #666; font-style: italic; }
  .warn { color: #b42318; }
  form { display: flex; gap: .5rem; margin-top: .5rem; } #msg { flex: 1; min-width: 0; padding: .3rem; }
  #notice { min-height: 1.4em; margin: .3rem 0; color: #b42318; }
</style>
</head>
<body>
<h1>keepalive-ws echo</h1>
<p>Connection: <span id="state">connecting</span> <span id="since"></span>
<button id="toggle" type="button">Disconnect</button>
<span id="retry" hidden><span id="retry-text"></span> <button id="retry-now" type="button">Retry now</button></span></p>
<dl>
  <dt>TCP keepalive</dt><dd id="keepalive">loading…</dd>
  <dt>Heartbeat</dt><dd id="heartbeat">loading…</dd>
  <dt>Largest message</dt><dd id="max-size">loading…</dd>
  <dt>Round trip</dt><dd><span id="rtt">–</span> <span class="note" id="rtt-stats"></span></dd>
  <dt>Sent</dt><dd><span id="sent-count">0</span> messages, <span id="sent-bytes">0</span> bytes</dd>
  <dt>Received</dt><dd><span id="recv-count">0</span> messages, <span id="recv-bytes">0</span> bytes</dd>
  <dt>Last close</dt><dd id="close">none yet</dd>
</dl>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="msg" autocomplete="off" placeholder="Type a message and press Enter" autofocus>
<button id="send" type="submit">Send</button></form>
<p id="notice" role="status"></p>
<p class="note">The round trip is timed on every echo: your messages and a probe every 5 s
(probes are counted above but not shown in the log). A browser sees only a close's code,
reason and whether it was clean; the cause shown is read from those.</p>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
/** How often a probe message times the round trip. */
const PROBE_EVERY_MS = 5000;
/** Backoff as client.ts --reconnect: from 0.5 s, doubling, at most 30 s, "equal jitter". */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
/** RFC 6455 §7.4.1 and the IANA registry. */
const CODE_NAMES = {
  1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
  1005: "no status received", 1006: "abnormal closure", 1007: "invalid frame payload data",
  1008: "policy violation", 1009: "message too big", 1010: "mandatory extension",
  1011: "internal error", 1012: "service restart", 1013: "try again later", 1014: "bad gateway",
  1015: "TLS handshake",
};

let ws = null;
let byUs = false;
let failures = 0;
let openedAt = null;
const STABLE_MS = 30000;
let retryTimer = 0;
let countdown = 0;
let probeTimer = 0;
/** Messages sent and not yet echoed, oldest first: the echo comes back in order. */
let pending = [];
const counts = { sent: 0, sentBytes: 0, recv: 0, recvBytes: 0 };
const rtt = { min: Infinity, sum: 0, n: 0 };

function stamp(d = new Date()) {
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
/** How much of a message the log shows; the rest is counted, not printed. */
const SHOW_CHARS = 1000;
function shown(text) {
  return text.length <= SHOW_CHARS ? text
    : text.slice(0, SHOW_CHARS) + "\u2026 [" + (text.length - SHOW_CHARS) + " more characters]";
}
/** One log line: a timestamp, the direction (> sent, < received, none for the page's own notes), the text. */
function line(cls, text, dir = "") {
  const div = document.createElement("div");
  div.className = cls;
  const time = document.createElement("time");
  time.textContent = stamp();
  const arrow = document.createElement("span");
  arrow.className = "dir";
  arrow.textContent = dir;
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  div.append(time, arrow, span);
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
}
function setState(text, cls) { $("state").textContent = text; $("state").className = cls; }
function sizeOf(data) { return typeof data === "string" ? encoder.encode(data).length : (data.size ?? data.byteLength); }
function seconds(ms) { return ms % 1000 === 0 ? ms / 1000 + " s" : ms + " ms"; }
function bytes(n) {
  if (n >= 1048576 && n % 1048576 === 0) return n / 1048576 + " MiB";
  if (n >= 1024 && n % 1024 === 0) return n / 1024 + " KiB";
  return n + " bytes";
}
function showCounts() {
  $("sent-count").textContent = counts.sent;
  $("sent-bytes").textContent = counts.sentBytes;
  $("recv-count").textContent = counts.recv;
  $("recv-bytes").textContent = counts.recvBytes;
}
function measured(ms) {
  rtt.min = Math.min(rtt.min, ms);
  rtt.sum += ms;
  rtt.n++;
  $("rtt").textContent = ms.toFixed(1) + " ms";
  $("rtt-stats").textContent = "(min " + rtt.min.toFixed(1) + " ms, mean " + (rtt.sum / rtt.n).toFixed(1) +
    " ms over " + rtt.n + ")";
}

async function loadInfo() {
  try {
    const res = await fetch("/info", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const info = await res.json();
    const ka = info.keepalive;
    $("keepalive").textContent = (ka.enabled
      ? "on: idle " + ka.idle_s + " s, interval " + ka.interval_s + " s, " + ka.count + " probes"
      : "off") +
      (ka.verified ? " (read back from the server's socket)" : " (not verified: what was asked for)") +
      "; TCP_USER_TIMEOUT " + (info.user_timeout_ms ? seconds(info.user_timeout_ms) : "off");
    $("heartbeat").textContent =
      (info.ping_interval_ms ? "ping every " + seconds(info.ping_interval_ms) : "pings off") + ", " +
      (info.pong_timeout_ms ? "close after " + seconds(info.pong_timeout_ms) + " of silence" : "no pong timeout");
    $("max-size").textContent = bytes(info.max_message_size);
  } catch (err) {
    for (const id of ["keepalive", "heartbeat", "max-size"]) $(id).textContent = "unknown (/info: " + err.message + ")";
  }
}

/** The cause as far as a browser can tell, from the code, cleanliness and who closed. */
function causeOf(e, ours) {
  if (ours) return "you disconnected";
  if (e.code === 1006) return "the connection was lost without a close frame (server gone, network cut, or a proxy's idle timeout)";
  if (e.code === 1000) return "the server closed normally";
  if (e.code === 1001) return "the server is going away (shutting down or restarting)";
  if (e.code === 1009) return "a message was larger than the server accepts";
  if (e.code === 1013) return "the server ran out of memory budget";
  if (e.code === 1002 || e.code === 1007) return "the server saw a protocol error";
  if (e.code === 1008) return "the server applied its policy (e.g. this page stopped reading)";
  if (e.code === 1011) return "the server ended the connection (e.g. no pong in time)";
  return "the server closed with code " + e.code;
}
function showClose(e, ours, at) {
  const name = CODE_NAMES[e.code] || "unregistered";
  const close = $("close");
  close.replaceChildren();
  const part = (id, text) => { const s = document.createElement("span"); s.id = id; s.textContent = text; return s; };
  close.append(
    part("close-code", String(e.code)), " ", part("close-name", "(" + name + ")"),
    ", reason ", part("close-reason", e.reason ? JSON.stringify(e.reason) : "none"),
    ", ", e.wasClean ? "clean" : "not clean", ". Cause: ", part("close-cause", causeOf(e, ours)),
    ". At ", part("close-time", stamp(at)), ".",
  );
  line("sys", "closed: " + e.code + " " + name + (e.reason ? " \u201c" + e.reason + "\u201d" : ""));
}

function send(text, probe) {
  ws.send(text);
  pending.push({ t: performance.now(), probe });
  counts.sent++;
  counts.sentBytes += sizeOf(text);
  showCounts();
}
function probe() {
  if (ws && ws.readyState === WebSocket.OPEN) send("rtt probe " + new Date().toISOString(), true);
}

function connect() {
  clearTimeout(retryTimer);
  clearInterval(countdown);
  $("retry").hidden = true;
  $("notice").textContent = "";
  loadInfo();
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/echo";
  const sock = new WebSocket(url);
  ws = sock;
  byUs = false;
  pending = [];
  setState("connecting", "waiting");
  $("since").textContent = "";
  $("toggle").textContent = "Disconnect";
  sock.onopen = () => {
    openedAt = Date.now();
    setState("open", "open");
    $("since").textContent = "since " + stamp();
    line("sys", "connected to " + url);
    probe();
    probeTimer = setInterval(probe, PROBE_EVERY_MS);
  };
  sock.onmessage = (e) => {
    const now = performance.now();
    counts.recv++;
    counts.recvBytes += sizeOf(e.data);
    showCounts();
    const sent = pending.shift();
    if (sent) measured(now - sent.t);
    if (!sent || !sent.probe) {
      line("in", typeof e.data === "string" ? shown(e.data) : "[binary, " + sizeOf(e.data) + " bytes]", "<");
    }
  };
  sock.onerror = () => line("sys", "error (a browser gives no detail; the close below says what it can)");
  sock.onclose = (e) => {
    clearInterval(probeTimer);
    const ours = byUs;
    showClose(e, ours, new Date());
    $("since").textContent = "";
    if (ours || (e.code === 1000 && e.wasClean)) {
      setState("closed", "closed");
      $("toggle").textContent = "Connect";
    } else {
      reconnectLater();
    }
  };
}

function reconnectLater() {
  // As client.ts --reconnect: the delay starts over only after a connection
  // lived STABLE_MS; one dropped soon after opening counts as a failure.
  failures = openedAt !== null && Date.now() - openedAt >= STABLE_MS ? 1 : failures + 1;
  openedAt = null;
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 20));
  const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
  const due = Date.now() + delay;
  setState("reconnecting", "waiting");
  $("toggle").textContent = "Stop";
  const tick = () => {
    $("retry-text").textContent = "next attempt (" + failures + ") in " +
      (Math.max(0, due - Date.now()) / 1000).toFixed(1) + " s";
  };
  tick();
  $("retry").hidden = false;
  countdown = setInterval(tick, 100);
  retryTimer = setTimeout(connect, delay);
}

function stop() {
  clearTimeout(retryTimer);
  clearInterval(countdown);
  $("retry").hidden = true;
  if (ws && ws.readyState <= WebSocket.OPEN) {
    byUs = true;
    ws.close(1000);
  } else {
    setState("closed", "closed");
  }
  $("toggle").textContent = "Connect";
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("msg").value;
  if (text === "") return;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    $("notice").textContent = "Not sent: the connection is " + $("state").textContent +
      ". Your message is kept; send it again once it is open.";
    return;
  }
  $("notice").textContent = "";
  send(text, false);
  line("out", shown(text), ">");
  $("msg").value = "";
});
$("toggle").addEventListener("click", () => {
  if ($("toggle").textContent === "Connect") connect();
  else stop();
});
$("retry-now").addEventListener("click", connect);
connect();
</script>
</body>
</html>
`;

/**
 * `/favicon.ico`: a 16×16 icon (a green dot), so browsers get an answer
 * instead of a 404 (which would count as a refusal and log a `rejected` line).
 * An ICO holding one 32-bit BMP, built here rather than shipped as a file.
 */
export const FAVICON: Uint8Array = buildIcon(16, (x, y) => {
  const d = Math.hypot(x - 7.5, y - 7.5);
  // #17803d, the page's "open" colour, with a soft edge.
  const alpha = Math.round(255 * Math.min(1, Math.max(0, 6.5 - d)));
  return [0x17, 0x80, 0x3d, alpha];
});

/** An ICO (one 32-bit BMP image) of `size`×`size` pixels, `pixel(x, y)` giving RGBA from the top left. */
function buildIcon(
  size: number,
  pixel: (x: number, y: number) => [number, number, number, number],
): Uint8Array {
  const pixels = size * size * 4;
  const maskRow = Math.ceil(size / 32) * 4; // the 1-bit AND mask, rows padded to 4 bytes
  const image = 40 + pixels + maskRow * size;
  const out = new Uint8Array(6 + 16 + image);
  const v = new DataView(out.buffer);
  // ICONDIR: reserved, type 1 (icon), one image.
  v.setUint16(2, 1, true);
  v.setUint16(4, 1, true);
  // ICONDIRENTRY: width, height, no palette, planes 1, 32 bits, size, offset.
  out[6] = size;
  out[7] = size;
  v.setUint16(10, 1, true);
  v.setUint16(12, 32, true);
  v.setUint32(14, image, true);
  v.setUint32(18, 22, true);
  // BITMAPINFOHEADER: the height counts the colour image and the mask.
  v.setUint32(22, 40, true);
  v.setInt32(26, size, true);
  v.setInt32(30, size * 2, true);
  v.setUint16(34, 1, true);
  v.setUint16(36, 32, true);
  v.setUint32(42, pixels + maskRow * size, true);
  // Rows bottom-up, each pixel BGRA; the mask stays 0 (alpha decides).
  let at = 62;
  for (let y = size - 1; y >= 0; y--) {
    for (let x = 0; x < size; x++) {
      const [r, g, b, a] = pixel(x, y);
      out.set([b, g, r, a], at);
      at += 4;
    }
  }
  return out;
}
