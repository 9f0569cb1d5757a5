/**
 * The independent checker of a chaos run. It trusts only the store, read directly
 * (CqlStore on the run's keyspace), and what the clients recorded:
 *
 * - every acked message is stored exactly once, at its acked seq, with its sender, cmid and
 *   body; nothing is stored that no client sent;
 * - each conversation's seqs are 1..head with no gap and no repeat;
 * - no (sender, cmid) got two seqs (acks and store), and a resend was acked dup:true with
 *   the first seq;
 * - membership from the stored log (create/add/remove/leave system messages): every member
 *   holds every message from its join on (after a final `sync` from its first gap; how many
 *   that sync had to fill is reported), except its own; a connection that was open when a
 *   message was committed got it without that sync; nobody got a message outside its
 *   membership; every message a client got matches the stored one;
 * - no connection got a seq out of order or twice (recorded live by the fleet);
 * - every send was acked (after the drain).
 */
import type { Store } from '../../src/actors/ports/index.js';
import type { ChatMessage } from '../../src/protocol/frames.js';
import type { Fleet, Got, Member } from './fleet.js';

export interface CheckStats {
  convs: number;
  stored: number;
  storedUser: number;
  storedSystem: number;
  memberships: number;
  /** (member, seq) pairs the member did not have live or from a backlog, filled by the final sync. */
  filledBySync: number;
  membersSynced: number;
  /** Who needed the final sync, and for which seqs (the first 50), for a post-mortem. */
  filled: Array<{ user: string; conv: string; seqs: string; node: string; welcomes: number }>;
  catchUpMs: number;
}

export interface CheckResult {
  violations: string[];
  stats: CheckStats;
}

interface Interval {
  from: number;
  to: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Membership intervals per user from the stored log (to = Infinity while still a member). */
function membership(conv: string, rows: ChatMessage[]): Map<string, Interval[]> {
  const out = new Map<string, Interval[]>();
  const join = (u: string, seq: number) => {
    const iv = out.get(u) ?? [];
    const last = iv[iv.length - 1];
    if (last && last.to === Infinity) return;
    iv.push({ from: seq, to: Infinity });
    out.set(u, iv);
  };
  const leave = (u: string, seq: number) => {
    const last = out.get(u)?.at(-1);
    if (last && last.to === Infinity) last.to = seq;
  };
  if (conv.startsWith('dm:')) {
    const [a, b] = conv.slice(3).split(':');
    join(a!, 1);
    join(b!, 1);
    return out;
  }
  for (const m of rows) {
    if (m.kind !== 'system' || !m.sys) continue;
    if (m.sys.op === 'create') {
      join(m.sys.by, m.seq);
      for (const u of m.sys.users) join(u, m.seq);
    } else if (m.sys.op === 'add') {
      for (const u of m.sys.users) join(u, m.seq);
    } else {
      for (const u of m.sys.users) leave(u, m.seq);
    }
  }
  return out;
}

const inside = (ivs: Interval[] | undefined, seq: number) => !!ivs?.some((iv) => seq >= iv.from && seq <= iv.to);

function ranges(seqs: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < seqs.length; ) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
    out.push(i === j ? `${seqs[i]}` : `${seqs[i]}-${seqs[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

export async function check(fleet: Fleet, store: Store, opts: { catchUpMs: number; t0: number; log(line: string): void }): Promise<CheckResult> {
  const violations: string[] = [];
  const v = (s: string) => violations.push(s);
  const stats: CheckStats = { convs: fleet.convs.size, stored: 0, storedUser: 0, storedSystem: 0, memberships: 0, filledBySync: 0, membersSynced: 0, filled: [], catchUpMs: 0 };

  // 1. Give the last pushes time to arrive (bounded): every member's contiguous prefix reaches the highest seq anyone saw.
  const known = new Map<string, number>();
  const see = (conv: string, seq: number) => known.set(conv, Math.max(known.get(conv) ?? 0, seq));
  for (const s of fleet.sends) if (s.seq !== undefined) see(s.conv, s.seq);
  for (const m of fleet.members.values()) for (const [conv, got] of m.received) for (const seq of got.keys()) see(conv, seq);
  const t0 = Date.now();
  const behind = (): number => {
    let n = 0;
    for (const m of fleet.members.values()) for (const conv of m.starts.keys()) if (m.floor(conv) < (known.get(conv) ?? 0)) n++;
    return n;
  };
  while (behind() > 0 && Date.now() - t0 < opts.catchUpMs) await sleep(250);
  stats.catchUpMs = Date.now() - t0;
  // From here on, syncs may repeat what a connection saw: the per-connection order record stops.
  fleet.phase = 'check';

  // 2. The store, conversation by conversation.
  const sentBy = new Map<string, string>();
  const storedAt = new Map<string, number>();
  for (const s of fleet.sends) sentBy.set(`${s.conv}|${s.user}|${s.cmid}`, s.body);
  for (const info of fleet.convs.values()) {
    const conv = info.conv;
    const rows = await store.messages(conv, 1, Number.MAX_SAFE_INTEGER, 1_000_000);
    stats.stored += rows.length;
    rows.forEach((m, i) => {
      if (m.seq !== i + 1) v(`store: ${conv}: seq ${m.seq} at position ${i + 1} (gap or repeat)`);
      if (m.conv !== conv) v(`store: ${conv}#${m.seq} has conv ${m.conv}`);
    });
    const head = rows.length === 0 ? 0 : rows[rows.length - 1]!.seq;
    const bySeq = new Map(rows.map((m) => [m.seq, m]));
    const keys = new Map<string, number>();
    for (const m of rows) {
      const k = `${m.from}|${m.cmid}`;
      if (keys.has(k)) v(`store: ${conv}: ${k} stored twice (seqs ${keys.get(k)} and ${m.seq})`);
      keys.set(k, m.seq);
      storedAt.set(`${conv}|${k}`, m.seq);
      if (m.kind === 'system') {
        stats.storedSystem++;
        continue;
      }
      stats.storedUser++;
      const body = sentBy.get(`${conv}|${m.from}|${m.cmid}`);
      if (body === undefined) v(`store: ${conv}#${m.seq}: ${m.from}|${m.cmid} was never sent by a client`);
      else if (body !== m.body) v(`store: ${conv}#${m.seq}: body differs from what ${m.from} sent`);
    }
    if ((known.get(conv) ?? 0) > head) v(`store: ${conv}: clients saw seq ${known.get(conv)} but the stored head is ${head}`);
    // Acked messages: stored once, where the ack said.
    for (const s of fleet.sends) {
      if (s.conv !== conv || s.seq === undefined) continue;
      const m = bySeq.get(s.seq);
      if (!m || m.from !== s.user || m.cmid !== s.cmid) {
        v(`lost: ${conv}: ${s.user} ${s.cmid} acked at seq ${s.seq} but stored there: ${m ? `${m.from}|${m.cmid}` : 'nothing'}`);
      }
    }
    for (const [key, seqs] of fleet.ackSeqs) {
      if (!key.startsWith(`${conv}|`)) continue;
      const [, user, cmid] = key.split('|');
      const stored = keys.get(`${user}|${cmid}`);
      for (const seq of seqs) if (stored !== seq) v(`cmid: ${key} acked with seq ${seq}, stored at ${stored ?? 'no seq'}`);
    }

    // 3. Delivery, against membership from the stored log.
    const members = membership(conv, rows);
    for (const [user, ivs] of members) {
      const m = fleet.members.get(user);
      if (!m) continue;
      stats.memberships++;
      const got = m.received.get(conv) ?? new Map<number, Got>();
      for (const [seq, g] of got) {
        const row = bySeq.get(seq);
        const where = `(socket ${g.socket} on ${g.node}, at ${(g.at / 1000).toFixed(1)} s)`;
        if (!row) v(`delivery: ${user} got ${conv}#${seq}, which is not stored ${where}`);
        else if (g.v !== `${row.from}|${row.cmid}`) v(`delivery: ${user} got ${conv}#${seq} as ${g.v}, stored ${row.from}|${row.cmid} ${where}`);
        if (!inside(ivs, seq)) v(`delivery: ${user} got ${conv}#${seq} outside its membership ${ivs.map((iv) => `${iv.from}-${iv.to}`).join(',')} ${where}`);
      }
      const current = ivs[ivs.length - 1]!;
      if (current.to !== Infinity) continue; // a removed user cannot sync what it missed while a member
      const missing = (): number[] => {
        const out: number[] = [];
        for (let s = current.from; s <= head; s++) if (!got.has(s) && bySeq.get(s)?.from !== user) out.push(s);
        return out;
      };
      let gaps = missing();
      if (gaps.length === 0) continue;
      // PROTOCOL §4.4: every connection gets every message. A socket open (welcomed) since
      // before a message was committed must have got it live, without any sync: a gap there
      // is a lost delivery on a healthy connection (what the final sync would only mask).
      if (m.client.state === 'open' && m.welcomeAt > 0) {
        const stranded = gaps.filter((s) => (bySeq.get(s)?.ts ?? 0) > m.welcomeAt + 1000);
        if (stranded.length > 0) {
          v(`delivery: ${user}'s connection (socket ${m.socket} on ${m.node}, open since ${((m.welcomeAt - opts.t0) / 1000).toFixed(1)} s) never got ${conv}#${ranges(stranded)}, committed while it was open`);
        }
      }
      stats.membersSynced++;
      if (stats.filled.length < 50) stats.filled.push({ user, conv, seqs: ranges(gaps), node: m.node, welcomes: m.welcomes });
      const before = gaps.length;
      await syncFrom(m, conv, gaps[0]! - 1, opts.log);
      gaps = missing();
      stats.filledBySync += before - gaps.length;
      if (gaps.length > 0) v(`delivery: ${user} lacks ${conv}#${ranges(gaps)} even after sync`);
    }
  }

  // 4. Every send answered.
  for (const s of fleet.sends) {
    const stored = storedAt.get(`${s.conv}|${s.user}|${s.cmid}`);
    const where = stored === undefined ? 'not stored' : `stored at seq ${stored}`;
    if (s.error !== undefined) v(`send: ${s.user} ${s.cmid} to ${s.conv} failed for good (${where}): ${s.error}`);
    else if (s.seq === undefined) {
      const ago = ((Date.now() - s.sentAt) / 1000).toFixed(0);
      v(`send: ${s.user} ${s.cmid} to ${s.conv}, sent at ${((s.sentAt - opts.t0) / 1000).toFixed(1)} s, not acked ${ago} s later (${where}${stored === undefined ? '' : ': the ack was lost and the client waits for it on a healthy connection'})`);
    }
  }
  return { violations: [...fleet.violations, ...violations], stats };
}

async function syncFrom(m: Member, conv: string, since: number, log: (line: string) => void): Promise<void> {
  for (let attempt = 1; attempt <= 4; attempt++) {
    try {
      await m.client.sync({ [conv]: since });
      return;
    } catch (err) {
      log(`check: sync of ${m.user} ${conv} failed (${err instanceof Error ? err.message : String(err)}), attempt ${attempt}`);
      await sleep(500 * attempt);
    }
  }
}
