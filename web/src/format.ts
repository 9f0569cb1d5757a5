/** Text for times, sizes, presence and system messages. */
import type { ChatMessage, Presence } from '../../src/client/index.js';

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** 14:03 today, else 12 Mar. */
export function shortTime(ts: number, now = new Date()): string {
  const d = new Date(ts);
  return sameDay(d, now) ? time.format(d) : day.format(d);
}

export function clock(ts: number): string {
  return time.format(new Date(ts));
}

/** "online", "last seen today at 14:03", "last seen yesterday at 09:12", "last seen 12 Mar at 18:40". */
export function presenceText(p: Presence | undefined, now = new Date()): string {
  if (!p) return '';
  if (p.online) return 'online';
  if (p.lastSeen === null || p.lastSeen === undefined) return 'offline';
  const d = new Date(p.lastSeen);
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  const when = sameDay(d, now) ? 'today' : sameDay(d, yesterday) ? 'yesterday' : day.format(d);
  return `last seen ${when} at ${time.format(d)}`;
}

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function who(user: string, me: string): string {
  return user === me ? 'You' : user;
}

function names(users: string[], me: string): string {
  return users.map((u) => who(u, me)).join(', ');
}

/** "alice created the group “Trip”", "You added bob, carol", "bob left". */
export function sysText(m: ChatMessage, me: string): string {
  const s = m.sys;
  if (!s) return '';
  const by = who(s.by, me);
  switch (s.op) {
    case 'create':
      return `${by} created the group “${s.title ?? ''}”`;
    case 'add':
      return `${by} added ${names(s.users, me)}`;
    case 'remove':
      return `${by} removed ${names(s.users, me)}`;
    case 'leave':
      return `${names(s.users, me)} left`;
  }
}

/** One line for the conversation list. */
export function previewText(m: ChatMessage, me: string, group: boolean): string {
  if (m.kind === 'system') return sysText(m, me);
  const text = m.kind === 'media' ? (m.media?.mime.startsWith('image/') ? 'Photo' : (m.media?.name ?? 'File')) : (m.body ?? '');
  if (m.from === me) return `You: ${text}`;
  return group ? `${m.from}: ${text}` : text;
}
