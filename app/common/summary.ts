/**
 * What a connection did, for the `close` event of both programs: pings sent
 * and answered with their round trips, messages and bytes each way, and how
 * long ago a frame last arrived. Read from the library's `pings`, `traffic`
 * and `lastFrameAt`.
 *
 * @module
 */

import type { Connection, PingStats } from "../../mod.ts";
import type { LogFields } from "./log.ts";

/** The `pings` fields: counts, and round trips in ms (null when no ping was answered). */
export function pingFields(p: PingStats): LogFields {
  const answered = p.answered > 0;
  return {
    sent: p.sent,
    answered: p.answered,
    rtt_min_ms: answered ? p.rttMinMs : null,
    rtt_avg_ms: answered ? Math.round((p.rttSumMs / p.answered) * 100) / 100 : null,
    rtt_max_ms: answered ? p.rttMaxMs : null,
  };
}

/**
 * The summary fields of a `close` event: `pings` {sent, answered,
 * rtt_min_ms, rtt_avg_ms, rtt_max_ms}, `traffic` {messages_in, bytes_in,
 * messages_out, bytes_out} (payload bytes) and `last_frame_age_ms`, how long
 * before the end bytes last arrived from the peer.
 */
export function closeSummary(ws: Connection, now: number = Date.now()): LogFields {
  const t = ws.traffic;
  return {
    pings: pingFields(ws.pings),
    traffic: {
      messages_in: t.messagesIn,
      bytes_in: t.bytesIn,
      messages_out: t.messagesOut,
      bytes_out: t.bytesOut,
    },
    last_frame_age_ms: Math.max(0, now - ws.lastFrameAt),
  };
}
