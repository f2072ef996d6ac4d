/**
 * Linux `TCP_INFO`: how long ago data was last sent and an ACK last
 * arrived on a socket, which is what tells a keepalive timeout from a user
 * timeout once the socket has failed.
 *
 * @module
 */

import { fdOf } from "./fd.ts";
import { addrBuf, bytes, denoAddrKey, lenBuf, lenBytes, LINUX, load, sockaddrKey } from "./libc.ts";

/** Linux `TCP_INFO` (include/uapi/linux/tcp.h) and the `struct tcp_info` offsets read. */
const TCP_INFO = 11;
const TCPI_LAST_DATA_SENT = 44;
const TCPI_LAST_ACK_RECV = 56;

/** Ages from a socket's `TCP_INFO`, in milliseconds before now. */
export interface TcpTimes {
  /** Since new data was last sent (`tcpi_last_data_sent`). */
  lastDataSentMs: number;
  /** Since an ACK last arrived, keepalive answers included (`tcpi_last_ack_recv`). */
  lastAckRecvMs: number;
}

/**
 * Reads `TCP_INFO` ages (Linux) from a conn whose fd was found earlier, e.g.
 * when its options were applied. Works after TCP has failed, when
 * `getpeername` no longer does, as long as the conn is not closed; null
 * otherwise.
 */
export function readTcpTimes(conn: Deno.Conn): TcpTimes | null {
  const n = load();
  const fd = fdOf.get(conn);
  const local = denoAddrKey(conn.localAddr);
  if ("reason" in n || n.p !== LINUX || fd === undefined || local === null) return null;
  lenBuf[0] = addrBuf.length;
  if (n.libc.getsockname(fd, addrBuf, lenBytes) !== 0) return null;
  if (sockaddrKey(n.p) !== local) return null;
  const info = new Uint8Array(104);
  const len = new Uint32Array([info.length]);
  if (n.libc.getsockopt(fd, n.p.IPPROTO_TCP, TCP_INFO, info, bytes(len)) !== 0) return null;
  if (len[0] < TCPI_LAST_ACK_RECV + 4) return null;
  const view = new DataView(info.buffer);
  return {
    lastDataSentMs: view.getUint32(TCPI_LAST_DATA_SENT, true),
    lastAckRecvMs: view.getUint32(TCPI_LAST_ACK_RECV, true),
  };
}
