/**
 * Presence (PROTOCOL.md §4.6), the pure part: a user is online while it has an open
 * connection and its last activity is within the online window. Only `send`, `read`,
 * `typing` and `active` are activity; `lastSeen` is the time of the last one (null if never).
 *
 * `PresenceWindow` holds one user's last activity and answers "online at time t?" and
 * "when does it lapse by itself?"; `PresenceWatch` remembers what was last published so
 * that only changes of `online` are pushed. No timers, no I/O: the user actor owns the
 * one timer per online user and the pushes.
 */

export interface PresenceState {
  online: boolean;
  lastSeen: number | null;
}

export class PresenceWindow {
  private last: number | null = null;

  constructor(readonly windowMs: number) {}

  get lastSeen(): number | null {
    return this.last;
  }

  /** Record activity at `at` (or merge a stored last seen); the later time wins. Returns true when it moved. */
  touch(at: number | null | undefined): boolean {
    if (at === null || at === undefined || !Number.isFinite(at)) return false;
    if (this.last !== null && at <= this.last) return false;
    this.last = at;
    return true;
  }

  /** Online at `now`: connected, and the last activity is less than the window ago. */
  online(now: number, connected: boolean): boolean {
    return connected && this.last !== null && now - this.last < this.windowMs;
  }

  /** When `online` turns false by itself (ms since the epoch), or null when it is not online at `now`. */
  lapsesAt(now: number, connected: boolean): number | null {
    return this.online(now, connected) ? this.last! + this.windowMs : null;
  }

  state(now: number, connected: boolean): PresenceState {
    return { online: this.online(now, connected), lastSeen: this.last };
  }
}

/** The online state last published to the watchers: `update` says whether a push is due. */
export class PresenceWatch {
  private published = false;

  get online(): boolean {
    return this.published;
  }

  /** Returns true when `online` differs from what was published (and records it as published). */
  update(online: boolean): boolean {
    if (online === this.published) return false;
    this.published = online;
    return true;
  }
}
