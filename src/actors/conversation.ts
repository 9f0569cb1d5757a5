/**
 * The conversation actor: the single writer of one conversation. It checks membership,
 * deduplicates (sender, cmid), assigns contiguous seqs, commits to the store (group commit:
 * sends that arrive while a commit is in flight go together in the next one), acks the
 * sender only after the commit, then fans out to the members' user actors. It also keeps
 * the members' receipt watermarks and the group's membership.
 */
import type { Completion, Actor } from './registry.js';
import type { ChatMessage, ConvKindName, MediaRef, ServerFrame, SysEvent } from '../protocol/frames.js';
import { dmMembers } from '../protocol/codes.js';
import {
  type ConnRef,
  type ConversationCommand,
  type Courier,
  type MediaRecord,
  type MemberChange,
  type MemberRecord,
  type Origin,
  type Store,
  type Log,
  DuplicateMessageError,
  RequestError,
  StoreConflictError,
  wireError,
} from './ports/index.js';
import { BoundedMap } from './bounded-map.js';
import { acknowledge, carryOwn } from './watermarks.js';

export interface ConversationDeps {
  store: Store;
  courier: Courier;
  log: Log;
  /** The ownership epoch this node holds for the conversation's partition. */
  epoch(conv: string): number;
  now(): number;
  maxGroup: number;
  /** Minimum interval between two aggregated group receipts of one kind. */
  groupReceiptMs: number;
  /** Most messages per commit (1: group commit off). */
  maxBatch?: number;
  /** Delay before dirty watermarks are written. */
  watermarkFlushMs: number;
  /** Called once per committed batch (metrics). */
  onCommit?(messages: number, ms: number): void;
  /**
   * Verify an upload the store does not know as complete yet (a media store that does not
   * report completion itself, e.g. S3), record it, and return the record as it is now.
   */
  completeUpload?(rec: MediaRecord): Promise<MediaRecord>;
}

const MAX_BATCH = 256;
const SENDER_TAIL = 1024;
const DEDUP_CACHE = 4096;

interface PendingSend {
  from: string;
  cmid: string;
  kind: ChatMessage['kind'];
  body?: string;
  media?: MediaRef;
  reply?: { seq: number };
  sys?: SysEvent;
  /** Connections waiting for the ack: the first gets the ack, later copies get dup:true. */
  waiters: Origin[];
  dones: Completion[];
}

type Send = Extract<ConversationCommand, { type: 'send' }>;

export class ConversationActor implements Actor<ConversationCommand> {
  private loaded = false;
  private stale = false;
  private exists = false;
  private kind: ConvKindName = 'direct';
  private title: string | undefined;
  private lastSeq = 0;
  private members = new Map<string, MemberRecord>();
  private readonly senders = new BoundedMap<number, string>(SENDER_TAIL);
  private readonly dedup = new BoundedMap<string, number>(DEDUP_CACHE);
  private pending: PendingSend[] = [];
  private inflight: PendingSend[] | null = null;
  private idleWaiters: Array<() => void> = [];
  private dirtyMarks = new Set<string>();
  private markTimer: NodeJS.Timeout | null = null;
  /** The watermark write in flight (passivation waits for it). */
  private markWrite: Promise<void> = Promise.resolve();
  private groupPushed = { delivered: 0, read: 0 };
  private groupPushedAt = 0;
  private groupTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly conv: string,
    private readonly deps: ConversationDeps,
  ) {}

  canPassivate(): boolean {
    return this.inflight === null && this.pending.length === 0;
  }

  async passivate(): Promise<void> {
    if (this.groupTimer) clearTimeout(this.groupTimer);
    this.groupTimer = null;
    await this.flushMarks();
  }

  async handle(cmd: ConversationCommand, done: Completion): Promise<void> {
    try {
      await this.ensureLoaded();
      switch (cmd.type) {
        case 'send':
          await this.onSend(cmd, done);
          return; // completes after its commit
        case 'recv':
        case 'read':
          this.onAck(cmd.type, cmd.user, cmd.seq, cmd.origin);
          break;
        case 'typing':
          await this.onTyping(cmd.user, cmd.on, cmd.origin);
          break;
        case 'group.create':
          await this.onGroupCreate(cmd);
          break;
        case 'group.add':
          await this.onGroupAdd(cmd.by, cmd.users, cmd.origin);
          break;
        case 'group.remove':
          await this.onGroupRemove(cmd.by, cmd.users, cmd.origin);
          break;
        case 'group.leave':
          await this.onGroupLeave(cmd.by, cmd.origin);
          break;
        case 'group.info':
          this.onGroupInfo(cmd.by, cmd.origin);
          break;
        case 'info':
          this.onInfo(cmd.by, cmd.seq, cmd.origin);
          break;
      }
      done.resolve();
    } catch (err) {
      this.replyError(cmd.origin, err);
      if (err instanceof RequestError) done.resolve();
      else done.reject(err);
    }
  }

  // ---------------------------------------------------------------- loading

  private async ensureLoaded(): Promise<void> {
    if (this.loaded && !this.stale) return;
    if (this.inflight) await this.idle();
    if (this.loaded && !this.stale) return;
    await this.load();
  }

  /** Claim the conversation at this node's epoch and read its state from the store. */
  private async load(): Promise<void> {
    const rec = await this.deps.store.activate(this.conv, this.deps.epoch(this.conv));
    this.members = new Map();
    this.exists = rec !== null;
    this.lastSeq = rec?.lastSeq ?? 0;
    if (rec) {
      this.kind = rec.kind;
      this.title = rec.title;
      for (const m of rec.members) this.members.set(m.user, { ...m });
      const from = Math.max(1, this.lastSeq - 255);
      const tail = await this.deps.store.messages(this.conv, from, this.lastSeq, 256);
      for (const m of tail) {
        this.senders.set(m.seq, m.from);
        this.dedup.set(dedupKey(m.from, m.cmid), m.seq);
      }
    }
    this.loaded = true;
    this.stale = false;
  }

  // ---------------------------------------------------------------- send

  private async onSend(cmd: Send, done: Completion): Promise<void> {
    const key = dedupKey(cmd.from, cmd.cmid);
    if (!this.exists) {
      const pair = dmMembers(this.conv);
      if (cmd.to === undefined || !pair || !pair.includes(cmd.from)) throw notFound();
    } else if (!this.members.has(cmd.from)) {
      throw notFound();
    }
    const known = this.dedup.get(key);
    if (known !== undefined) {
      this.ack(cmd.origin, known, cmd.cmid, true);
      done.resolve();
      return;
    }
    const queued = this.findQueued(cmd.from, cmd.cmid);
    if (queued) {
      queued.waiters.push(cmd.origin);
      queued.dones.push(done);
      return;
    }
    if (cmd.reply && cmd.reply.seq > this.lastSeq) throw new RequestError('bad_request', 'reply.seq is not an earlier message');
    if (cmd.media) await this.checkMedia(cmd.from, cmd.media);
    const p: PendingSend = { from: cmd.from, cmid: cmd.cmid, kind: cmd.media ? 'media' : 'text', waiters: [cmd.origin], dones: [done] };
    if (cmd.body !== undefined) p.body = cmd.body;
    if (cmd.media) p.media = cmd.media;
    if (cmd.reply) p.reply = cmd.reply;
    this.pending.push(p);
    this.startCommit();
  }

  private async checkMedia(from: string, media: MediaRef): Promise<void> {
    let rec = await this.deps.store.media(media.id);
    if (rec && rec.owner === from && rec.completedAt === undefined && this.deps.completeUpload) {
      rec = await this.deps.completeUpload(rec);
    }
    if (!rec || rec.owner !== from || rec.completedAt === undefined) {
      throw new RequestError('bad_request', 'media: not an upload this sender completed');
    }
    if (rec.mime !== media.mime || rec.size !== media.size) {
      throw new RequestError('bad_request', 'media: mime or size differ from the upload');
    }
  }

  private findQueued(from: string, cmid: string): PendingSend | undefined {
    const match = (p: PendingSend) => p.from === from && p.cmid === cmid;
    return this.inflight?.find(match) ?? this.pending.find(match);
  }

  /** Commit the pending sends as one batch if no commit is in flight. */
  private startCommit(): void {
    if (this.inflight || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.deps.maxBatch ?? MAX_BATCH);
    this.inflight = batch;
    void this.commitBatch(batch);
  }

  private async commitBatch(batch: PendingSend[]): Promise<void> {
    const started = performance.now();
    try {
      if (this.stale) await this.load();
      const creating = !this.exists;
      const ts = this.deps.now();
      const msgs = batch.map((p, i) => toMessage(this.conv, this.lastSeq + 1 + i, ts, p));
      const members: MemberChange[] = [];
      if (creating) {
        for (const user of dmMembers(this.conv) ?? []) {
          members.push({ op: 'upsert', member: { user, role: 'member', joinedSeq: 1, delivered: 0, read: 0 } });
        }
      }
      await this.deps.store.commit({
        conv: this.conv,
        epoch: this.deps.epoch(this.conv),
        expectedLastSeq: this.lastSeq,
        messages: msgs,
        ...(creating ? { kind: 'direct' as const, members } : {}),
      });
      if (creating) {
        this.exists = true;
        this.kind = 'direct';
        for (const m of members) if (m.op === 'upsert') this.members.set(m.member.user, { ...m.member });
      }
      this.deps.onCommit?.(msgs.length, performance.now() - started);
      // Members may fetch a media as soon as they see its message: reference it before the fan-out.
      await Promise.all(
        msgs.flatMap((m) =>
          m.media
            ? [this.deps.store.addMediaRef(m.media.id, this.conv).catch((err) => this.deps.log.warn({ conv: this.conv, media: m.media!.id, err: String(err) }, 'media reference not written'))]
            : [],
        ),
      );
      this.inflight = null;
      this.applyCommitted(batch, msgs);
    } catch (err) {
      this.inflight = null;
      this.onCommitFailed(batch, err);
    }
    if (this.inflight === null) {
      if (this.pending.length > 0) this.startCommit();
      else this.notifyIdle();
    }
  }

  private applyCommitted(batch: PendingSend[], msgs: ChatMessage[]): void {
    this.lastSeq = msgs[msgs.length - 1]!.seq;
    const fanouts: Array<Promise<void>> = [];
    batch.forEach((p, i) => {
      const msg = msgs[i]!;
      this.senders.set(msg.seq, msg.from);
      this.dedup.set(dedupKey(msg.from, msg.cmid), msg.seq);
      const sender = this.members.get(msg.from);
      if (sender) {
        carryOwn(sender, msg.seq);
        this.dirtyMarks.add(msg.from);
      }
      p.waiters.forEach((w, j) => this.ack(w, msg.seq, msg.cmid, j > 0, msg.ts));
      fanouts.push(...this.fanOut(msg, p.waiters[0]));
    });
    this.scheduleMarks();
    const dones = batch.flatMap((p) => p.dones);
    Promise.all(fanouts).then(
      () => dones.forEach((d) => d.resolve()),
      (err) => dones.forEach((d) => d.reject(err)),
    );
  }

  private onCommitFailed(batch: PendingSend[], err: unknown): void {
    if (err instanceof DuplicateMessageError) {
      // Some keys were committed before (e.g. by a previous owner, or before a crash).
      const retry: PendingSend[] = [];
      for (const p of batch) {
        const hit = err.existing.find((e) => e.from === p.from && e.cmid === p.cmid);
        if (hit) {
          this.dedup.set(dedupKey(p.from, p.cmid), hit.seq);
          p.waiters.forEach((w) => this.ack(w, hit.seq, p.cmid, true));
          p.dones.forEach((d) => d.resolve());
        } else retry.push(p);
      }
      this.pending.unshift(...retry);
      return;
    }
    // Unknown outcome or fenced out: reload before the next commit; retries dedup against the store.
    this.stale = true;
    this.deps.log.warn({ conv: this.conv, err: String(err) }, 'commit failed');
    for (const p of batch) {
      p.waiters.forEach((w) => this.replyError(w, err));
      p.dones.forEach((d) => d.reject(err));
    }
  }

  private ack(origin: Origin, seq: number, cmid: string, dup: boolean, ts?: number): void {
    if (origin.re === undefined) return;
    const frame: ServerFrame = { t: 'ack', re: origin.re, conv: this.conv, seq, cmid, ts: ts ?? this.deps.now() };
    if (dup) frame.dup = true;
    this.deps.courier.toConnection(origin, frame);
  }

  /** Hand a committed message to every member's user actor (each pushes to its connections). */
  private fanOut(msg: ChatMessage, except: ConnRef | undefined, extra: string[] = []): Array<Promise<void>> {
    const out: Array<Promise<void>> = [];
    const users = new Set([...this.members.keys(), ...extra]);
    for (const user of users) {
      out.push(this.deps.courier.toUser(except ? { type: 'deliver', user, msg, except } : { type: 'deliver', user, msg }));
    }
    return out;
  }

  // ---------------------------------------------------------------- receipts

  private onAck(kind: 'recv' | 'read', user: string, seq: number, origin: Origin): void {
    const member = this.members.get(user);
    if (!this.exists || !member) throw notFound();
    const changed = acknowledge(member, kind, seq, this.lastSeq, user, (s) => this.senders.get(s));
    if (!changed.delivered && !changed.read) return;
    this.dirtyMarks.add(user);
    this.scheduleMarks();
    if (this.kind === 'direct') {
      const push = (k: 'delivered' | 'read', s: number) => {
        const frame: ServerFrame = { t: 'receipt', conv: this.conv, user, kind: k, seq: s };
        for (const m of this.members.keys()) void this.deps.courier.toUser({ type: 'push', user: m, frame, except: origin });
      };
      if (changed.delivered) push('delivered', member.delivered);
      if (changed.read) push('read', member.read);
    } else {
      this.scheduleGroupReceipt();
    }
  }

  private scheduleGroupReceipt(): void {
    if (this.groupTimer) return;
    const wait = Math.max(0, this.groupPushedAt + this.deps.groupReceiptMs - this.deps.now());
    this.groupTimer = setTimeout(() => {
      this.groupTimer = null;
      this.pushGroupReceipts();
    }, wait);
    this.groupTimer.unref();
  }

  private pushGroupReceipts(): void {
    let delivered = Infinity;
    let read = Infinity;
    for (const m of this.members.values()) {
      delivered = Math.min(delivered, m.delivered);
      read = Math.min(read, m.read);
    }
    if (!Number.isFinite(delivered)) return;
    const frames: ServerFrame[] = [];
    if (delivered > this.groupPushed.delivered) {
      this.groupPushed.delivered = delivered;
      frames.push({ t: 'receipt', conv: this.conv, user: '*', kind: 'delivered', seq: delivered });
    }
    if (read > this.groupPushed.read) {
      this.groupPushed.read = read;
      frames.push({ t: 'receipt', conv: this.conv, user: '*', kind: 'read', seq: read });
    }
    if (frames.length === 0) return;
    this.groupPushedAt = this.deps.now();
    for (const frame of frames) {
      for (const user of this.members.keys()) void this.deps.courier.toUser({ type: 'push', user, frame });
    }
  }

  private scheduleMarks(): void {
    if (this.markTimer || this.dirtyMarks.size === 0) return;
    this.markTimer = setTimeout(() => {
      this.markTimer = null;
      void this.flushMarks();
    }, this.deps.watermarkFlushMs);
    this.markTimer.unref();
  }

  /** Write the dirty watermarks; resolves once every write started so far has finished. */
  private async flushMarks(): Promise<void> {
    if (this.markTimer) clearTimeout(this.markTimer);
    this.markTimer = null;
    if (this.dirtyMarks.size > 0) {
      const updates = [...this.dirtyMarks].flatMap((user) => {
        const m = this.members.get(user);
        return m ? [{ user, delivered: m.delivered, read: m.read }] : [];
      });
      this.dirtyMarks.clear();
      const previous = this.markWrite;
      this.markWrite = (async () => {
        await previous;
        try {
          await this.deps.store.saveWatermarks(this.conv, updates);
        } catch (err) {
          this.deps.log.warn({ conv: this.conv, err: String(err) }, 'watermark write failed; will retry');
          for (const u of updates) this.dirtyMarks.add(u.user);
          this.scheduleMarks();
        }
      })();
    }
    await this.markWrite;
  }

  // ---------------------------------------------------------------- typing, info

  private async onTyping(user: string, on: boolean, origin: Origin): Promise<void> {
    if (!this.exists || !this.members.has(user)) throw notFound();
    const frame: ServerFrame = { t: 'typing', conv: this.conv, user, on };
    for (const m of this.members.keys()) {
      if (m !== user) void this.deps.courier.toUser({ type: 'push', user: m, frame, except: origin });
    }
  }

  private onInfo(by: string, seq: number, origin: Origin): void {
    this.requireMember(by);
    const delivered: string[] = [];
    const read: string[] = [];
    for (const m of this.members.values()) {
      if (m.delivered >= seq) delivered.push(m.user);
      if (m.read >= seq) read.push(m.user);
    }
    this.ok(origin, { delivered, read });
  }

  // ---------------------------------------------------------------- groups

  private async onGroupCreate(cmd: Extract<ConversationCommand, { type: 'group.create' }>): Promise<void> {
    const known = this.dedup.get(dedupKey(cmd.by, cmd.cmid)) ?? (this.exists ? await this.deps.store.findDuplicate(this.conv, cmd.by, cmd.cmid) : null);
    if (known !== null && known !== undefined) {
      this.ok(cmd.origin, { conv: this.conv, seq: known });
      return;
    }
    if (this.exists) throw new RequestError('bad_request', 'group already exists');
    const others = [...new Set(cmd.members)].filter((u) => u !== cmd.by);
    if (others.length + 1 > this.deps.maxGroup) {
      throw new RequestError('limit', `a group has at most ${this.deps.maxGroup} members`);
    }
    const changes: MemberChange[] = [
      { op: 'upsert', member: { user: cmd.by, role: 'admin', joinedSeq: 1, delivered: 0, read: 0 } },
      ...others.map((user): MemberChange => ({ op: 'upsert', member: { user, role: 'member', joinedSeq: 1, delivered: 0, read: 0 } })),
    ];
    const sys: SysEvent = { op: 'create', by: cmd.by, users: others, title: cmd.title };
    const msg = await this.commitSystem(cmd.by, cmd.cmid, sys, changes, { kind: 'group', title: cmd.title });
    this.ok(cmd.origin, { conv: this.conv, seq: msg.seq });
    // System messages go to every connection, the acting one included: they change what it shows.
    await Promise.all(this.fanOut(msg, undefined));
  }

  private async onGroupAdd(by: string, users: string[], origin: Origin): Promise<void> {
    this.requireAdmin(by);
    const added = [...new Set(users)].filter((u) => !this.members.has(u));
    if (added.length === 0) {
      this.ok(origin, { seq: this.lastSeq });
      return;
    }
    if (this.members.size + added.length > this.deps.maxGroup) {
      throw new RequestError('limit', `a group has at most ${this.deps.maxGroup} members`);
    }
    // The joined seq is the add event's own seq, known only once the sends committing before it are done.
    const changes = (seq: number) =>
      added.map((user): MemberChange => ({
        op: 'upsert',
        member: { user, role: 'member', joinedSeq: seq, delivered: seq - 1, read: seq - 1 },
      }));
    const msg = await this.commitSystem(by, sysCmid(), { op: 'add', by, users: added }, changes);
    this.ok(origin, { seq: msg.seq });
    await Promise.all(this.fanOut(msg, undefined));
  }

  private async onGroupRemove(by: string, users: string[], origin: Origin): Promise<void> {
    this.requireAdmin(by);
    const removed = [...new Set(users)].filter((u) => this.members.has(u));
    if (removed.length === 0) {
      this.ok(origin, { seq: this.lastSeq });
      return;
    }
    await this.removeMembers(by, removed, 'remove', origin);
  }

  private async onGroupLeave(by: string, origin: Origin): Promise<void> {
    this.requireMember(by);
    if (this.kind !== 'group') throw new RequestError('bad_request', 'not a group');
    await this.removeMembers(by, [by], 'leave', origin);
  }

  private async removeMembers(by: string, removed: string[], op: 'remove' | 'leave', origin: Origin): Promise<void> {
    const changes: MemberChange[] = removed.map((user) => ({ op: 'remove', user }));
    const remaining = [...this.members.values()].filter((m) => !removed.includes(m.user));
    if (remaining.length > 0 && !remaining.some((m) => m.role === 'admin')) {
      // Never leave a group without an admin: the longest-standing member takes the role.
      const heir = remaining.reduce((a, b) => (b.joinedSeq < a.joinedSeq ? b : a));
      changes.push({ op: 'upsert', member: { ...heir, role: 'admin' } });
    }
    const msg = await this.commitSystem(by, sysCmid(), { op, by, users: removed }, changes);
    this.ok(origin, { seq: msg.seq });
    // The removed users get the event that removed them, and nothing after it.
    await Promise.all(this.fanOut(msg, undefined, removed));
  }

  private onGroupInfo(by: string, origin: Origin): void {
    this.requireMember(by);
    if (this.kind !== 'group') throw new RequestError('bad_request', 'not a group');
    const members = [...this.members.values()].map((m) => ({ user: m.user, role: m.role }));
    this.ok(origin, { conv: this.conv, title: this.title, members, lastSeq: this.lastSeq });
  }

  /** Commit one system message with membership changes, after every queued send is done. */
  private async commitSystem(
    by: string,
    cmid: string,
    sys: SysEvent,
    changeList: MemberChange[] | ((seq: number) => MemberChange[]),
    create?: { kind: ConvKindName; title: string },
  ): Promise<ChatMessage> {
    await this.idle();
    if (this.stale) await this.load();
    const msg = toMessage(this.conv, this.lastSeq + 1, this.deps.now(), { from: by, cmid, kind: 'system', sys });
    const changes = typeof changeList === 'function' ? changeList(msg.seq) : changeList;
    try {
      await this.deps.store.commit({
        conv: this.conv,
        epoch: this.deps.epoch(this.conv),
        expectedLastSeq: this.lastSeq,
        messages: [msg],
        members: changes,
        ...(create ?? {}),
      });
    } catch (err) {
      if (!(err instanceof DuplicateMessageError)) this.stale = true;
      throw err;
    }
    if (create) {
      this.exists = true;
      this.kind = create.kind;
      this.title = create.title;
    }
    this.lastSeq = msg.seq;
    this.senders.set(msg.seq, by);
    this.dedup.set(dedupKey(by, cmid), msg.seq);
    for (const c of changes) {
      if (c.op === 'upsert') this.members.set(c.member.user, { ...c.member });
      else this.members.delete(c.user);
    }
    const actor = this.members.get(by);
    if (actor) {
      carryOwn(actor, msg.seq);
      this.dirtyMarks.add(by);
      this.scheduleMarks();
    }
    return msg;
  }

  private idle(): Promise<void> {
    if (this.inflight === null && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  // ---------------------------------------------------------------- helpers

  private requireMember(user: string): MemberRecord {
    const m = this.exists ? this.members.get(user) : undefined;
    if (!m) throw notFound();
    return m;
  }

  private requireAdmin(user: string): void {
    const m = this.requireMember(user);
    if (this.kind !== 'group') throw new RequestError('bad_request', 'not a group');
    if (m.role !== 'admin') throw new RequestError('forbidden', 'only admins add or remove members');
  }

  private ok(origin: Origin, fields: Record<string, unknown>): void {
    if (origin.re === undefined) return;
    this.deps.courier.toConnection(origin, { t: 'ok', re: origin.re, ...fields });
  }

  private replyError(origin: Origin, err: unknown): void {
    const e = wireError(err);
    if (!(err instanceof RequestError)) this.deps.log.warn({ conv: this.conv, err: String(err) }, 'conversation command failed');
    if (err instanceof StoreConflictError) this.stale = true;
    if (origin.re === undefined && e.code !== 'not_found' && e.code !== 'bad_request') return;
    this.deps.courier.toConnection(origin, origin.re === undefined ? { t: 'err', ...e } : { t: 'err', re: origin.re, ...e });
  }
}

function dedupKey(from: string, cmid: string): string {
  return `${from}\u0000${cmid}`;
}

function notFound(): RequestError {
  return new RequestError('not_found', 'no such conversation');
}

let sysCounter = 0;
function sysCmid(): string {
  return `sys:${Date.now().toString(36)}:${(sysCounter++).toString(36)}:${Math.random().toString(36).slice(2, 8)}`;
}

function toMessage(
  conv: string,
  seq: number,
  ts: number,
  p: Pick<PendingSend, 'from' | 'cmid' | 'kind' | 'body' | 'media' | 'reply' | 'sys'>,
): ChatMessage {
  const m: ChatMessage = { conv, seq, from: p.from, cmid: p.cmid, ts, kind: p.kind };
  if (p.body !== undefined) m.body = p.body;
  if (p.media) m.media = p.media;
  if (p.reply) m.reply = p.reply;
  if (p.sys) m.sys = p.sys;
  return m;
}
