/**
 * The WebSocket heartbeat, shared by all connections of a process: one timer
 * per (ping interval, pong timeout) pair instead of two per connection, so
 * 5,000 idle connections cost one timer, not 10,000.
 *
 * Each tick, every member that has heard nothing for the pong timeout is
 * told it timed out, and every member whose last ping is a ping interval old
 * is told to ping. A tick comes every 1/20 of the shorter period (10 ms to
 * 1 s), so a ping is at most one tick late: with gorilla's 54 s / 60 s, at
 * most 1 s.
 *
 * @module
 */

/** Shortest and longest time between ticks. */
const MIN_TICK_MS = 10;
const MAX_TICK_MS = 1_000;
/** Ticks per shorter period: the worst-case lateness is 1/TICKS_PER_PERIOD of it. */
const TICKS_PER_PERIOD = 20;

/** A connection as the heartbeat sees it. */
export interface HeartbeatMember {
  /** When a frame last arrived (ms since the epoch). */
  readonly lastReceived: number;
  /** Sends a ping. */
  heartbeatPing(): void;
  /** Nothing arrived for the pong timeout; `quietMs` is how long it has been. */
  heartbeatTimeout(quietMs: number): void;
}

class Group {
  readonly members = new Map<HeartbeatMember, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly pingMs: number, readonly pongMs: number, readonly key: string) {}

  add(member: HeartbeatMember): void {
    this.members.set(member, Date.now());
    if (this.#timer !== undefined) return;
    const shorter = Math.min(...[this.pingMs, this.pongMs].filter((ms) => ms > 0));
    const tick = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, shorter / TICKS_PER_PERIOD));
    this.#timer = setInterval(() => this.#tick(), tick);
  }

  remove(member: HeartbeatMember): void {
    this.members.delete(member);
    if (this.members.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      if (groups.get(this.key) === this) groups.delete(this.key);
    }
  }

  #tick(): void {
    const now = Date.now();
    for (const [member, lastPing] of this.members) {
      const quiet = now - member.lastReceived;
      if (this.pongMs > 0 && quiet >= this.pongMs) {
        this.remove(member);
        member.heartbeatTimeout(quiet);
      } else if (this.pingMs > 0 && now - lastPing >= this.pingMs) {
        this.members.set(member, now);
        member.heartbeatPing();
      }
    }
  }
}

const groups = new Map<string, Group>();

/**
 * Adds `member` to the heartbeat with the given periods (0 turns either off)
 * and returns the function that removes it. With both 0 nothing is scheduled.
 */
export function joinHeartbeat(
  member: HeartbeatMember,
  pingIntervalMs: number,
  pongTimeoutMs: number,
): () => void {
  if (pingIntervalMs <= 0 && pongTimeoutMs <= 0) return () => {};
  const key = `${pingIntervalMs}/${pongTimeoutMs}`;
  let group = groups.get(key);
  if (!group) {
    group = new Group(Math.max(0, pingIntervalMs), Math.max(0, pongTimeoutMs), key);
    groups.set(key, group);
  }
  group.add(member);
  const joined = group;
  return () => joined.remove(member);
}
