/**
 * The timers of every connection, shared: one interval per (ping interval,
 * pong timeout, stall timeout) triple instead of timers per connection, so
 * 100,000 idle connections cost one timer, not 200,000.
 *
 * Each tick, for every member:
 * - a write pending longer than the stall timeout: the peer makes no
 *   progress reading what we send (`stalled`);
 * - nothing received for the pong timeout: the peer or the path is dead
 *   (`timedOut`);
 * - the last ping a ping interval old: time to ping (`pingDue`).
 *
 * A tick comes every 1/20 of the shortest period (10 ms to 1 s), so each
 * check is at most one tick late: with gorilla's 54 s / 60 s, at most 1 s.
 *
 * @module
 */

/** Shortest and longest time between ticks. */
const MIN_TICK_MS = 10;
const MAX_TICK_MS = 1_000;
/** Ticks per shortest period: the worst-case lateness is 1/TICKS_PER_PERIOD of it. */
const TICKS_PER_PERIOD = 20;

/** A connection as the watchdog sees it. */
export interface WatchdogMember {
  /**
   * When a frame last arrived (ms on the watchdog's clock). A member that
   * is not waiting for input (it is busy, or holds unread input by choice)
   * reports the present: it cannot tell silence from its own backlog.
   */
  readonly lastReceived: number;
  /** Since when a write has been pending (ms), or 0 when none is. */
  readonly writingSince: number;
  /** Time to send a ping. */
  pingDue(): void;
  /** Nothing arrived for the pong timeout; `quietMs` is how long it has been. */
  timedOut(quietMs: number): void;
  /** A write has made no progress for `ms`, past the stall timeout. */
  stalled(ms: number): void;
}

/**
 * The periods of a watchdog, in ms, under the names the connection's
 * options give them; 0 turns a check off.
 */
export interface WatchdogPeriods {
  /** Send a ping this often. */
  pingInterval: number;
  /** Time out a member that received nothing for this long. */
  pongTimeout: number;
  /** Fail a member whose write has been pending this long. */
  stallTimeout: number;
}

/** One set of periods and its members; {@linkcode tick} runs the checks. */
export class Watchdog {
  /** The periods. */
  readonly periods: WatchdogPeriods;
  /** The members, each with the time of its last ping. */
  readonly members: Map<WatchdogMember, number> = new Map();

  /** @param periods the checks' periods (0 turns one off) */
  constructor(periods: WatchdogPeriods) {
    this.periods = periods;
  }

  /** The interval between ticks for these periods, or 0 when every check is off. */
  get tickMs(): number {
    const { pingInterval, pongTimeout, stallTimeout } = this.periods;
    const on = [pingInterval, pongTimeout, stallTimeout].filter((ms) => ms > 0);
    if (on.length === 0) return 0;
    return Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.min(...on) / TICKS_PER_PERIOD));
  }

  /** Adds `member`, as if it had pinged at `now`. */
  add(member: WatchdogMember, now: number): void {
    this.members.set(member, now);
  }

  /** Removes `member`. */
  remove(member: WatchdogMember): void {
    this.members.delete(member);
  }

  /** Runs every check at time `now`. A member that is told it failed is removed first. */
  tick(now: number): void {
    const { pingInterval, pongTimeout, stallTimeout } = this.periods;
    for (const [member, lastPing] of this.members) {
      const since = member.writingSince;
      if (stallTimeout > 0 && since > 0 && now - since >= stallTimeout) {
        this.members.delete(member);
        member.stalled(now - since);
        continue;
      }
      const quiet = now - member.lastReceived;
      if (pongTimeout > 0 && quiet >= pongTimeout) {
        this.members.delete(member);
        member.timedOut(quiet);
      } else if (pingInterval > 0 && now - lastPing >= pingInterval) {
        this.members.set(member, now);
        member.pingDue();
      }
    }
  }
}

/** The process's watchdogs, one per set of periods, each with its interval timer. */
const running = new Map<string, { dog: Watchdog; timer: ReturnType<typeof setInterval> }>();

/**
 * Adds `member` to the process's watchdog for `periods` (starting its timer
 * if needed) and returns the function that removes it. With every period 0
 * nothing is scheduled. `clock` must be the clock the member reports in.
 */
export function joinWatchdog(
  member: WatchdogMember,
  periods: WatchdogPeriods,
  clock: () => number = Date.now,
): () => void {
  const key = `${periods.pingInterval}/${periods.pongTimeout}/${periods.stallTimeout}`;
  let joined = running.get(key);
  if (!joined) {
    const dog = new Watchdog({ ...periods });
    if (dog.tickMs === 0) return () => {};
    const timer = setInterval(() => dog.tick(clock()), dog.tickMs);
    joined = { dog, timer };
    running.set(key, joined);
  }
  const entry = joined;
  entry.dog.add(member, clock());
  return () => {
    entry.dog.remove(member);
    if (entry.dog.members.size === 0 && running.get(key) === entry) {
      clearInterval(entry.timer);
      running.delete(key);
    }
  };
}
