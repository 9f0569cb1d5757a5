/** SDK clients for protocol tests: signed in on a test node, with every event recorded. */
import { SwitchboardClient } from '../../src/client/index.js';
import type { ChatMessage, Receipt, Typing, ErrPush, Presence } from '../../src/client/index.js';
import type { Encoding } from '../../src/protocol/codes.js';
import type { TestNode } from './node.js';

export interface Peer {
  client: SwitchboardClient;
  user: string;
  msgs: ChatMessage[];
  receipts: Receipt[];
  typing: Typing[];
  presence: Presence[];
  errs: ErrPush[];
  /** Messages of one conversation, in arrival order. */
  of(conv: string): ChatMessage[];
  close(): Promise<void>;
}

const open: SwitchboardClient[] = [];

/** Sign in (waits for `synced`, so the backlog is in `msgs`). */
export async function peer(node: TestNode, user: string, encoding: Encoding, opts: { autoRecv?: boolean } = {}): Promise<Peer> {
  const client = new SwitchboardClient({
    url: node.url,
    token: () => node.token(user),
    encoding,
    reconnect: { minMs: 50, maxMs: 500 },
    retry: { minMs: 20, maxMs: 200 },
    ...opts,
  });
  open.push(client);
  const p: Peer = {
    client,
    user,
    msgs: [],
    receipts: [],
    typing: [],
    presence: [],
    errs: [],
    of: (conv) => p.msgs.filter((m) => m.conv === conv),
    close: () => client.close(),
  };
  client.on('msg', (m) => p.msgs.push(m));
  client.on('receipt', (r) => p.receipts.push(r));
  client.on('typing', (t) => p.typing.push(t));
  client.on('presence', (x) => p.presence.push(x));
  client.on('err', (e) => p.errs.push(e));
  const synced = client.waitFor('synced', undefined, 10_000);
  await client.connect();
  await synced;
  return p;
}

export async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.close().catch(() => {})));
}

let counter = 0;
/** A user id unique to this test run. */
export function uid(prefix: string): string {
  return `${prefix}${++counter}${Math.random().toString(36).slice(2, 6)}`;
}

export async function eventually(check: () => void | Promise<void>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
