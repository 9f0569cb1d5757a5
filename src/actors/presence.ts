/**
 * Presence (PROTOCOL.md §4.6), the pure part: a user is online while it has an open
 * connection and its last activity is within the online window. Only `send`, `read`,
 * `typing` and `active` are activity; `lastSeen` is the time of the last one (null if never).
 *
 * Plain functions over (lastSeen, window): the user actor keeps the two numbers and the
 * online state it last published in its own fields (no objects per user: an actor stays
 * loaded for every user with an open connection). No timers, no I/O: the user actor owns
 * the one timer per online user and the pushes.
 */

export interface PresenceState {
  online: boolean;
  lastSeen: number | null;
}

/** The last seen after activity at `at` (or a stored last seen merged in): the later time wins. */
export function later(lastSeen: number | null, at: number | null | undefined): number | null {
  if (at === null || at === undefined || !Number.isFinite(at)) return lastSeen;
  return lastSeen !== null && at <= lastSeen ? lastSeen : at;
}

/** Online at `now`: connected, and the last activity is less than the window ago. */
export function isOnline(lastSeen: number | null, windowMs: number, now: number, connected: boolean): boolean {
  return connected && lastSeen !== null && now - lastSeen < windowMs;
}

/** When `online` turns false by itself (ms since the epoch), or null when it is not online at `now`. */
export function lapsesAt(lastSeen: number | null, windowMs: number, now: number, connected: boolean): number | null {
  return isOnline(lastSeen, windowMs, now, connected) ? lastSeen! + windowMs : null;
}
