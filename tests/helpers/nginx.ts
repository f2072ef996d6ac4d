/**
 * A real nginx as a WebSocket reverse proxy for tests: it runs in the
 * foreground (`daemon off`, one process) on a free loopback port, with a
 * config written into its own temporary directory (pid, logs and temp files
 * stay there), proxies `/` to an upstream on 127.0.0.1, and is stopped and
 * its directory removed on dispose (`await using`), even when a test fails.
 *
 * @module
 */

import { pathOf } from "./needs.ts";
import { Program } from "./process.ts";

/** Where Debian's nginx packages install the binary (tests say `needs(…, "nginx")`). */
export const NGINX_BIN: string = pathOf("nginx");

/** What the proxy in front of the upstream looks like. */
export interface NginxOptions {
  /** The upstream server's port on 127.0.0.1. */
  upstreamPort: number;
  /** `proxy_read_timeout` and `proxy_send_timeout`, in nginx syntax (e.g. `3s`). */
  timeout: string;
  /**
   * What nginx sends upstream as `Host`: `$http_host` (default) keeps the
   * client's host and port, `$host` drops the port.
   */
  host?: "$http_host" | "$host";
}

/** A running nginx started by {@linkcode startNginx}. */
export interface Nginx extends AsyncDisposable {
  /** The port nginx listens on (127.0.0.1). */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/echo` through the proxy. */
  readonly echoUrl: string;
  /** What nginx wrote to its error log so far. */
  errorLog(): string;
}

/** The nginx.conf the tests use: the WebSocket proxy setup the docs recommend. */
export function nginxConfig(dir: string, port: number, options: NginxOptions): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${options.upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host ${options.host ?? "$http_host"};
      proxy_read_timeout ${options.timeout};
      proxy_send_timeout ${options.timeout};
    }
  }
}
`;
}

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return (listener.addr as Deno.NetAddr).port;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
async function accepting(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** How long nginx gets to start listening. */
const START_TIMEOUT_MS = 10_000;

/** Starts nginx in front of `upstreamPort`; resolves once it accepts connections. */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-nginx-" });
  const port = freePort();
  await Deno.writeTextFile(`${dir}/nginx.conf`, nginxConfig(dir, port, options));
  // -e: the log for messages before the config is read (otherwise /var/log/nginx).
  const nginx = Program.spawn(NGINX_BIN, [
    "-p",
    dir,
    "-e",
    `${dir}/error.log`,
    "-c",
    `${dir}/nginx.conf`,
  ]);
  const errorLog = () => {
    try {
      return Deno.readTextFileSync(`${dir}/error.log`);
    } catch {
      return "";
    }
  };
  const stop = async () => {
    // QUIT would wait for open WebSockets; TERM is nginx's fast shutdown.
    nginx.kill("SIGTERM");
    await nginx.wait(5_000).catch(() => {});
    await nginx[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await nginx.until(
      `nginx to accept connections on 127.0.0.1:${port}`,
      () => accepting(port),
      START_TIMEOUT_MS,
    );
  } catch (err) {
    const log = errorLog();
    await stop();
    throw new Error(`nginx did not start on 127.0.0.1:${port}:\n${log}`, { cause: err });
  }
  return {
    port,
    echoUrl: `ws://127.0.0.1:${port}/echo`,
    errorLog,
    [Symbol.asyncDispose]: stop,
  };
}
