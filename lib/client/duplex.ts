/**
 * A `Deno.Conn` as a `node:stream` Duplex, so that `node:tls` can run TLS
 * over a stream it did not open itself: a tunnel through a proxy.
 *
 * @module
 */

import { Duplex } from "node:stream";
import { writeAll } from "../http/io.ts";
import { closeConn } from "../tcp/sockopt.ts";

/** The size of each read from the conn. */
const READ_SIZE = 16 * 1024;

/** `conn` as a Duplex: reads when Node asks, writes in order, closes `conn` when destroyed. */
export function connDuplex(conn: Deno.Conn): Duplex {
  return new Duplex({
    read() {
      const buf = new Uint8Array(READ_SIZE);
      conn.read(buf).then(
        (n) => this.push(n === null ? null : buf.subarray(0, n)),
        (err) => this.destroy(err),
      );
    },
    write(chunk: Uint8Array, _encoding, callback) {
      writeAll(conn, chunk).then(() => callback(), callback);
    },
    final(callback) {
      conn.closeWrite().then(() => callback(), callback);
    },
    destroy(err, callback) {
      closeConn(conn);
      callback(err);
    },
  });
}
