/**
 * What `client --help` prints. Every escape the text shows (`\n`, `\e`,
 * `\x01`) is written with two backslashes here, so the help itself holds no
 * control character but its newlines.
 *
 * @module
 */

import { formatDuration } from "../common/duration.ts";
import { commonHelp } from "../common/help.ts";
import { DEFAULT_PROBE_MAX_MS, DEFAULT_PROBE_MIN_MS, PROBE_PONG_WAIT_MS } from "./probe.ts";

/** Where the client connects without a URL. */
export const DEFAULT_URL = "ws://localhost:8080/echo";

const PONG_WAIT = formatDuration(PROBE_PONG_WAIT_MS);
const PROBE_MIN = formatDuration(DEFAULT_PROBE_MIN_MS);
const PROBE_MAX = formatDuration(DEFAULT_PROBE_MAX_MS);

/** The client's `--help` text. */
export const CLIENT_HELP =
  `keepalive-ws client: a WebSocket client with Go's TCP keepalive defaults.

Usage: deno task client [flags] [URL]        (URL defaults to ${DEFAULT_URL})

URL: ws://HOST[:PORT]/PATH or wss://…; without a scheme it is ws:// (localhost:8080).

Lines on stdin go out as text messages; each message received is printed as one
line on stdout. On stdin EOF the client waits for the replies still due (bounded
by --wait), closes with 1000 and exits. Logs go to stderr.

On a terminal: a "> " prompt with line editing and history (arrows, Home/End,
Ctrl-A/E/U/K/W), messages printed above the line being typed as "< text", with
control characters shown as escapes (\\n, \\e, \\x01) and binary messages as
"[binary 5 B] aGVsbG8=", in colour unless NO_COLOR is set; slash commands
(/ping [data], /close [code [reason]], /quit, /help; "//" sends one "/").
On a pipe: one message per line, newline and CR in a text message written as
\\n and \\r, binary messages as base64 (see --output).

Messages:
  --send MSG               send MSG instead of reading stdin (repeatable; sent again
                           on each connection with --reconnect)
  --count N                exit after N messages received (fewer within --wait: exit 1)
  --wait D|forever         stay connected D after the last send, or until the server
                           closes or Ctrl-C (default: until the replies due arrive,
                           at most 10s)
  --binary                 send binary messages instead of text
  --output text|json|raw   how received messages are written: text (default, above);
                           json: {"type":"text"|"binary","data":…} per line, binary
                           data in base64; raw: the bytes as they came, then a
                           newline (not on a terminal)
  --slash, --no-slash      read lines starting with / as commands (default: on a
                           terminal only)
  --no-history             do not read or save the terminal's history file
                           ($XDG_STATE_HOME/keepalive-ws/history, else
                           ~/.local/state/keepalive-ws/history; mode 0600, the last
                           1000 lines; a line typed with a leading space is not kept)

Connection:
  -H, --header "K: V"      an extra request header (repeatable)
  --origin ORIGIN          the Origin header to send
  --subprotocol NAME       a subprotocol to offer (repeatable)
  --ca FILE                trust this PEM CA certificate for wss:// (or a self-signed
                           server certificate, even one marked CA:TRUE)
  -k, --insecure           wss:// without checking the server's certificate (expired,
                           self-signed, another host): anyone on the path can read
                           and change the traffic
  --cert FILE              PEM client certificate, for a server that asks for one
                           (mutual TLS; with --key); the open event then names the
                           server's certificate (peer_subject)
  --key FILE               its PEM private key
  --reconnect              after a failed connect, an abnormal close or the server
                           going away (1001), reconnect with exponential backoff and
                           jitter (from 0.5s); stops on the client's own close, a
                           close 1000 from the server, or Ctrl-C
  --reconnect-max-delay D  longest delay between attempts (default 30s)
  --proxy URL              go through this proxy: http://[USER:PASS@]HOST[:PORT] (HTTP
                           CONNECT), https://… (TLS to the proxy), socks5://… (names
                           resolved here) or socks5h://… (by the proxy); default port
                           1080 (443 for https://). Keepalive goes on the socket to
                           the proxy. Without it, as curl: https_proxy/HTTPS_PROXY for
                           wss://, http_proxy (lower case only) for ws://, then
                           all_proxy/ALL_PROXY; no_proxy/NO_PROXY lists hosts that go
                           direct (lower case first)
  --no-proxy               ignore the proxy environment variables

Diagnosing:
  --show-pings             log each ping and pong ("ping" and "pong" events; a pong
                           that answers our ping carries its round trip, rtt_ms)
  --probe-idle             find the idle timeout of the path: hold one silent connection
                           per checkpoint (heartbeat off, keepalive as given; add
                           --no-keepalive for a pure test), ping each at its checkpoint
                           and wait ${PONG_WAIT} for the pong. Prints a recommendation,
                           then "idle timeout between Ns and Ms (cause)" or
                           "no idle timeout up to Ms"
  --probe-min D            first checkpoint; they double up to --probe-max (default ${PROBE_MIN})
  --probe-max D            last checkpoint (default ${PROBE_MAX})

${commonHelp({ ping: "off", pong: "off" })}

Signals: Ctrl-C (SIGINT) or SIGTERM closes with 1000 and exits; so does the end of the
npm it was started through (npx, which does not pass SIGTERM on). Through npx a Ctrl-C
on a pipe ends npx with 130 (the shell npm runs reports the signal).
Exit codes: 0 /close, /quit, or closed with 1000 or 1001; 1 refused, failed, timed
out or closed abnormally (the last line on stderr names the cause); 2 usage error.`;
