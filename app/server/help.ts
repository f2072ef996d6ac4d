/**
 * What `server --help` prints.
 *
 * @module
 */

import {
  DEFAULT_SERVER_PING_INTERVAL_MS,
  DEFAULT_SERVER_PONG_TIMEOUT_MS,
} from "../../lib/server/serve.ts";
import { formatDuration } from "../common/duration.ts";
import { commonHelp } from "../common/help.ts";

/** The server's `--help` text. */
export const SERVER_HELP =
  `keepalive-ws server: a WebSocket echo server with Go's TCP keepalive defaults.

Usage: deno task server [flags]

Endpoints: /echo (WebSocket echo), / (browser console), /healthz, /metrics (Prometheus)

Server:
  --addr HOST:PORT         address to listen on (default localhost:8080; port 0 picks one)
  --max-connections N      upgrades past N open connections get 503 (default 0 = no limit)
  --memory-budget SIZE     bytes all connections together may hold in buffers, partial
                           messages and send queues; past it the biggest holders are
                           closed with 1013 (default 256MiB; KiB/MiB/GiB suffixes)
  --origin PATTERN         also allow this Origin host pattern, e.g. *.example.com
                           (repeatable; by default only the request's own host);
                           null allows "Origin: null" (file:// pages, sandboxed iframes)
  --subprotocol NAME       a subprotocol to agree to (repeatable)
  --tls-cert FILE          PEM certificate: serve wss:// (with --tls-key)
  --tls-key FILE           PEM private key
  --tls-client-ca FILE     require a client certificate signed by a CA in this PEM file
                           (mutual TLS); one without, from another CA or expired gets
                           403 and a close event with cause tls-handshake. The open
                           event and /info name the certificate (peer_subject). Not
                           with --workers
  --workers N|auto         run N processes sharing the port with SO_REUSEPORT (Linux);
                           auto = one per core (default 1). /metrics adds up all workers

${
    commonHelp({
      ping: formatDuration(DEFAULT_SERVER_PING_INTERVAL_MS),
      pong: formatDuration(DEFAULT_SERVER_PONG_TIMEOUT_MS),
    })
  }

Signals: SIGINT (Ctrl-C) or SIGTERM stops accepting, sends close 1001 to every client,
waits up to 5s for their answers and exits 0. Started through npx, it stops the same
way when npm is gone (npm does not pass SIGTERM on), and Ctrl-C ends npx with 130.
Exit codes: 0 clean stop, 1 cannot start (address in use, bad certificate), 2 usage error.`;
