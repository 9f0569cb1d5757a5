/**
 * Signing in. With a node in --dev the app asks GET /dev/token?user=NAME for a token each
 * time the SDK needs one (a dev node restarted without SB_JWT_SECRET has a new secret, so the
 * SDK's one retry after a 4001 gets a fresh token). Elsewhere a pasted token is used as is.
 * The session lives in sessionStorage: per tab, so two tabs can be two people.
 */
import type { TokenSource } from '../../src/client/index.js';

const KEY = 'switchboard.session';

export interface Session {
  user: string;
  /** A pasted token; absent: dev tokens. */
  token?: string;
}

export const USER_RE = /^[A-Za-z0-9_.@-]{1,64}$/;

export function loadSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Session | null;
    return s && typeof s.user === 'string' && USER_RE.test(s.user) ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

export class NoDevTokens extends Error {}

export async function devToken(user: string): Promise<string> {
  const res = await fetch(`/dev/token?user=${encodeURIComponent(user)}`, { cache: 'no-store' });
  if (res.status === 404) throw new NoDevTokens('this node hands out no dev tokens (it runs without --dev)');
  if (!res.ok) throw new Error(`token: HTTP ${res.status}`);
  const body = (await res.json()) as { token?: unknown };
  if (typeof body.token !== 'string') throw new Error('token: no token in the answer');
  return body.token;
}

export function tokenSource(s: Session): TokenSource {
  return s.token ?? (() => devToken(s.user));
}

/** The user id (`sub`) of a JWT, without checking it (the node does). */
export function tokenUser(token: string): string | null {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === 'string' && USER_RE.test(sub) ? sub : null;
  } catch {
    return null;
  }
}
