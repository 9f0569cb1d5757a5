/**
 * The chat: one SwitchboardClient, the conversations it knows about, and the DOM that shows
 * them. Every server event updates the model (model.ts) and then the parts of the page that
 * show it: the conversation list is redrawn whole (batched), the open conversation row by row.
 */
import {
  SwitchboardClient,
  SwitchboardError,
  type ChatMessage,
  type ConnectionState,
  type Presence,
  type Receipt,
  type ReceiptInfo,
  type Typing,
} from '../../src/client/index.js';
import { dmId } from '../../src/protocol/codes.js';
import { tokenSource, USER_RE, type Session } from './auth.js';
import { avatar, fill, h } from './dom.js';
import { clock, presenceText, size, who } from './format.js';
import { highest, lastActivity, newCmid, newConv, tick, unread, type Conv, type Pending } from './model.js';
import { convItem, membersPanel, msgRow, pendingRow, shell, ticks, type MediaView, type Shell } from './view.js';

/** Messages per history page. */
const PAGE = 30;
/** A typing indicator nobody renewed is dropped after this long. */
const TYPING_TTL_MS = 6_000;
/** While typing, `typing on` is sent again this often; `off` after this long without a key. */
const TYPING_RENEW_MS = 3_000;
const TYPING_IDLE_MS = 4_000;
/** At most one `active` frame this often (sends, reads and typing count as activity anyway). */
const ACTIVE_EVERY_MS = 5_000;

export class App {
  private readonly client: SwitchboardClient;
  private readonly me: string;
  private readonly convs = new Map<string, Conv>();
  private readonly presence = new Map<string, Presence>();
  private readonly watched = new Set<string>();
  private readonly mediaUrls = new Map<string, { url: string; expires: number }>();
  private readonly ui: Shell;
  private readonly cleanups: Array<() => void> = [];
  private current: Conv | null = null;
  /** Rows of the open conversation: `s<seq>` for messages, `p<cmid>` for ours in flight. */
  private readonly rows = new Map<string, HTMLElement>();
  private listQueued = false;
  /** Conversations with a history page on its way. */
  private readonly loading = new Set<Conv>();
  /** The view follows new messages while it is scrolled to the bottom. */
  private stick = true;
  private typingOut: { conv: string; at: number } | null = null;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private toastTimer: ReturnType<typeof setTimeout> | undefined;
  private lastActive = 0;
  private welcomed = false;

  constructor(
    private readonly root: HTMLElement,
    session: Session,
    private readonly onSignOut: () => void,
  ) {
    this.me = session.user;
    this.client = new SwitchboardClient({
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
      token: tokenSource(session),
      autoRecv: true,
      device: 'web',
      reconnect: { minMs: 250, maxMs: 5_000 },
    });
    this.ui = shell(this.me, {
      startChat: (user) => this.startChat(user),
      createGroup: (title, members) => this.createGroup(title, members),
      signOut: () => void this.signOut(),
      toggleMembers: () => {
        this.ui.members.hidden = !this.ui.members.hidden;
        this.renderMembers();
      },
      loadOlder: () => this.current && void this.loadOlder(this.current),
      scrolled: () => {
        const el = this.ui.scroller;
        this.stick = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
        if (el.scrollTop < 80 && this.current?.more) void this.loadOlder(this.current);
      },
      sendText: () => this.sendText(),
      sendFile: (file) => this.sendFile(file),
      typed: () => this.typed(),
    });
  }

  start(): void {
    fill(this.root, this.ui.app);
    const c = this.client;
    this.cleanups.push(
      c.on('state', (s) => this.onState(s)),
      c.on('welcome', () => void this.onWelcome()),
      c.on('msg', (m) => this.onMsg(m)),
      c.on('receipt', (r) => this.onReceipt(r)),
      c.on('typing', (t) => this.onTyping(t)),
      c.on('presence', (p) => this.onPresence(p)),
      c.on('error', (e) => console.debug('switchboard:', e.message)),
    );
    const active = (): void => this.active();
    for (const ev of ['pointerdown', 'pointermove', 'keydown', 'wheel', 'focus'] as const) this.listen(window, ev, active);
    this.listen(document, 'visibilitychange', () => {
      if (document.visibilityState !== 'visible') return;
      active();
      if (this.current) this.markRead(this.current);
    });
    c.connect().catch((e: unknown) => this.onState('closed', e));
  }

  private listen(target: EventTarget, ev: string, fn: () => void): void {
    target.addEventListener(ev, fn, { passive: true });
    this.cleanups.push(() => target.removeEventListener(ev, fn));
  }

  private async signOut(): Promise<void> {
    this.stopTyping();
    for (const off of this.cleanups.splice(0)) off();
    await this.client.close();
    this.onSignOut();
  }

  // ---- server events ------------------------------------------------------------------------

  private onState(s: ConnectionState, err?: unknown): void {
    const b = this.ui.banner;
    b.dataset.state = s;
    this.ui.state.textContent = s === 'open' ? 'connected' : s;
    if (s === 'open') {
      b.hidden = true;
      return;
    }
    b.hidden = false;
    if (s === 'closed') {
      const why = err instanceof Error ? err.message : 'the node refused this session';
      fill(b, `Disconnected: ${why}. `, h('button', { type: 'button', onclick: () => void this.signOut() }, 'Sign in again'));
    } else fill(b, s === 'connecting' ? 'Connecting…' : 'Connection lost. Reconnecting…');
  }

  /** After every welcome (the first and each reconnect): catch up on the list, ticks and reads. */
  private async onWelcome(): Promise<void> {
    if (!this.welcomed) {
      this.welcomed = true;
      if (document.visibilityState === 'visible') this.active(); // the user just opened the app
    }
    let list;
    try {
      list = await this.client.convs();
    } catch {
      return; // the next welcome tries again
    }
    for (const i of list) {
      const c = this.conv(i.conv, i.title);
      c.draft = false;
      if (i.title) c.title = i.title;
      c.lastSeq = Math.max(c.lastSeq, i.lastSeq);
      c.read = Math.max(c.read, i.read);
      c.delivered = Math.max(c.delivered, i.delivered);
    }
    this.scheduleList();
    this.watchPeers();
    // The newest message of each conversation, for the list's previews.
    const stale = list.filter((i) => i.lastSeq > (this.convs.get(i.conv)?.last?.seq ?? 0)).slice(0, 50);
    await Promise.all(
      stale.map((i) =>
        this.client.history(i.conv, { limit: 1 }).then(
          (page) => page.forEach((m) => this.addMsg(m)),
          () => undefined,
        ),
      ),
    );
    const c = this.current;
    if (c) {
      if (c.kind === 'group') await this.loadMembers(c);
      this.markRead(c);
      void this.loadTicks(c); // receipts may have been missed while disconnected
    }
    this.scheduleList();
  }

  private onMsg(m: ChatMessage): void {
    const c = this.addMsg(m);
    if (m.from !== this.me) this.setTyping(c, m.from, false);
    if (c === this.current) this.markRead(c);
    this.scheduleList();
  }

  private onReceipt(r: Receipt): void {
    const c = this.convs.get(r.conv);
    if (!c) return;
    if (r.user === this.me) {
      // Our own read on another device.
      if (r.kind === 'read') c.read = Math.max(c.read, r.seq);
      c.delivered = Math.max(c.delivered, r.seq);
      this.scheduleList();
      return;
    }
    if (r.kind === 'read') c.peerRead = Math.max(c.peerRead, r.seq);
    c.peerDelivered = Math.max(c.peerDelivered, r.seq);
    if (c === this.current) this.updateTicks();
  }

  private onTyping(t: Typing): void {
    const c = this.convs.get(t.conv);
    if (c && t.user !== this.me) this.setTyping(c, t.user, t.on);
  }

  private onPresence(p: Presence): void {
    this.presence.set(p.user, p);
    // A closed tab never says it stopped typing.
    if (!p.online) for (const c of this.convs.values()) this.setTyping(c, p.user, false);
    if (this.current?.peer === p.user) this.renderHeader();
    this.scheduleList();
  }

  // ---- the model ----------------------------------------------------------------------------

  private conv(id: string, title?: string): Conv {
    let c = this.convs.get(id);
    if (!c) {
      c = newConv(id, this.me, title);
      this.convs.set(id, c);
      if (c.peer) queueMicrotask(() => this.watchPeers()); // after the caller has set it up (draft or not)
    }
    return c;
  }

  /** Records a message (live, backlog or history) and shows it when its conversation is open. */
  private addMsg(m: ChatMessage): Conv {
    const c = this.conv(m.conv);
    const newest = m.seq >= c.lastSeq;
    c.lastSeq = Math.max(c.lastSeq, m.seq);
    if (!c.last || m.seq >= c.last.seq) c.last = m;
    // The node carries our watermarks over our own messages (never past an unread one).
    if (m.from === this.me && c.read >= m.seq - 1) {
      c.read = Math.max(c.read, m.seq);
      c.delivered = Math.max(c.delivered, m.seq);
    }
    const known = c.msgs.has(m.seq);
    c.msgs.set(m.seq, m);
    if (!known && newest && m.sys) {
      const s = m.sys;
      if (s.title) c.title = s.title;
      if (s.users.includes(this.me) && (s.op === 'remove' || s.op === 'leave')) c.left = true;
      if (s.users.includes(this.me) && s.op === 'add') c.left = false;
      if (c === this.current) {
        void this.loadMembers(c);
        this.renderComposer();
      }
    }
    if (c === this.current) this.showMsg(m);
    return c;
  }

  private setTyping(c: Conv, user: string, on: boolean): void {
    const had = c.typing.has(user);
    clearTimeout(c.typing.get(user));
    c.typing.delete(user);
    if (on) c.typing.set(user, setTimeout(() => this.setTyping(c, user, false), TYPING_TTL_MS));
    if (!on && !had) return;
    if (c === this.current) this.renderHeader();
    this.scheduleList();
  }

  /** Presence of every direct conversation's other party (the SDK renews it after reconnects). */
  private watchPeers(): void {
    const users = [...this.convs.values()]
      .filter((c) => c.peer !== null && !c.draft && !this.watched.has(c.peer))
      .map((c) => c.peer!)
      .slice(0, 1000);
    if (users.length === 0 || this.client.state !== 'open') return;
    for (const u of users) this.watched.add(u);
    this.client.presenceSub(users).then(
      ({ denied }) => denied.forEach((u) => this.watched.delete(u)),
      () => users.forEach((u) => this.watched.delete(u)),
    );
  }

  /** Reads up to the newest message of the open conversation while the page is in view. */
  private markRead(c: Conv): void {
    if (c !== this.current || c.draft || document.visibilityState !== 'visible' || c.lastSeq <= c.read) return;
    c.read = c.lastSeq;
    c.delivered = Math.max(c.delivered, c.lastSeq);
    this.client.read(c.id, c.lastSeq);
    this.scheduleList();
  }

  /**
   * The other side's watermarks from `info` (receipts only tell what changes): the newest of
   * our messages that everybody else has read, and delivered, found by binary search.
   */
  private async loadTicks(c: Conv): Promise<void> {
    const others = c.kind === 'direct' ? [c.peer!] : (c.members ?? []).map((m) => m.user).filter((u) => u !== this.me);
    if (c.draft || others.length === 0) return;
    const ours = [...c.msgs.values()]
      .filter((m) => m.from === this.me && m.kind !== 'system')
      .map((m) => m.seq)
      .sort((a, b) => a - b);
    const asked = new Map<number, Promise<ReceiptInfo>>();
    const info = (seq: number): Promise<ReceiptInfo> => {
      let p = asked.get(seq);
      if (!p) asked.set(seq, (p = this.client.info(c.id, seq)));
      return p;
    };
    const everyone = (users: string[]): boolean => others.every((u) => users.includes(u));
    try {
      const read = await highest(ours.filter((s) => s > c.peerRead), async (s) => everyone((await info(s)).read));
      c.peerRead = Math.max(c.peerRead, read);
      c.peerDelivered = Math.max(c.peerDelivered, c.peerRead);
      const delivered = await highest(ours.filter((s) => s > c.peerDelivered), async (s) => everyone((await info(s)).delivered));
      c.peerDelivered = Math.max(c.peerDelivered, delivered);
    } catch {
      return;
    }
    if (c === this.current) this.updateTicks();
  }

  private async loadMembers(c: Conv): Promise<void> {
    if (c.kind !== 'group' || c.left) return;
    try {
      const info = await this.client.groupInfo(c.id);
      c.members = info.members;
      c.title = info.title;
    } catch (e) {
      if (e instanceof SwitchboardError && e.code === 'not_found') c.left = true;
    }
    if (c !== this.current) return;
    this.renderHeader();
    this.renderMembers();
    this.renderComposer();
  }

  /** The first page of history (newest messages), or the page below the oldest one shown. */
  private async loadOlder(c: Conv): Promise<void> {
    if (this.loading.has(c) || !c.more || c.draft) return;
    this.loading.add(c);
    this.renderOlder();
    const first = c.oldest === null;
    try {
      const page = await this.client.history(c.id, first ? { limit: PAGE } : { before: c.oldest!, limit: PAGE });
      const el = this.ui.scroller;
      const fromBottom = el.scrollHeight - el.scrollTop;
      for (const m of page) this.addMsg(m);
      c.oldest = Math.min(c.oldest ?? Number.MAX_SAFE_INTEGER, page[0]?.seq ?? c.oldest ?? 1);
      c.more = page.length === PAGE && c.oldest > 1;
      if (c === this.current) {
        if (first) this.scrollToBottom();
        else el.scrollTop = el.scrollHeight - fromBottom;
      }
    } catch (e) {
      this.toast(`Cannot load history: ${errText(e)}`);
    } finally {
      this.loading.delete(c);
      this.renderOlder();
    }
  }

  /**
   * A signed URL of the media (cached until shortly before it expires). Tried again a few
   * times on not_found: the node may not have recorded a just-sent message's media yet.
   */
  private async mediaUrl(id: string): Promise<string> {
    const hit = this.mediaUrls.get(id);
    if (hit && hit.expires - Date.now() > 30_000) return hit.url;
    for (let attempt = 0; ; attempt++) {
      try {
        const { url, expires } = await this.client.mediaGet(id);
        this.mediaUrls.set(id, { url, expires });
        return url;
      } catch (e) {
        const transient = e instanceof SwitchboardError && (e.code === 'not_found' || e.code === 'disconnected' || e.code === 'timeout' || e.retryable);
        if (!transient || attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  private active(): void {
    const now = Date.now();
    if (now - this.lastActive >= ACTIVE_EVERY_MS && this.client.active()) this.lastActive = now;
  }

  // ---- actions --------------------------------------------------------------------------------

  private async open(c: Conv): Promise<void> {
    if (this.current !== c) this.stopTyping();
    this.current = c;
    this.rows.clear();
    fill(this.ui.list);
    this.ui.chat.hidden = false;
    this.ui.empty.hidden = true;
    this.ui.members.hidden = true;
    this.ui.app.classList.add('chat-open');
    this.renderHeader();
    this.renderComposer();
    for (const m of [...c.msgs.values()].sort((a, b) => a.seq - b.seq)) this.showMsg(m);
    for (const p of c.pending.values()) this.showPending(p);
    this.stick = true;
    this.scrollToBottom();
    this.renderOlder();
    this.scheduleList();
    this.ui.text.focus();
    if (c.oldest === null) await this.loadOlder(c);
    if (this.current !== c) return;
    if (c.kind === 'group') await this.loadMembers(c);
    this.markRead(c);
    await this.loadTicks(c);
  }

  private startChat(user: string): void {
    if (!USER_RE.test(user)) return this.toast('A user id is 1–64 letters, digits or . _ @ -');
    if (user === this.me) return this.toast('That is you: pick somebody else.');
    const id = dmId(this.me, user);
    let c = this.convs.get(id);
    if (!c) {
      c = this.conv(id);
      c.draft = true; // created by the first send, with `to`
      c.more = false;
      c.oldest = 0;
    }
    void this.open(c);
  }

  private async createGroup(title: string, members: string[]): Promise<boolean> {
    const bad = members.find((u) => !USER_RE.test(u));
    const problem = !title ? 'A group needs a name.' : bad !== undefined ? `Not a user id: “${bad}”` : null;
    if (problem) {
      this.toast(problem);
      return false;
    }
    try {
      const { conv, seq } = await this.client.groupCreate({ title, members: members.filter((u) => u !== this.me) });
      const c = this.conv(conv, title);
      c.lastSeq = Math.max(c.lastSeq, seq);
      c.read = Math.max(c.read, seq);
      void this.open(c);
      return true;
    } catch (e) {
      this.toast(`Cannot create the group: ${errText(e)}`);
      return false;
    }
  }

  /** A group change; its system message comes as a push, to this connection too. */
  private async groupOp(c: Conv, op: () => Promise<unknown>): Promise<void> {
    try {
      await op();
    } catch (e) {
      this.toast(errText(e));
    }
    await this.loadMembers(c);
    this.scheduleList();
  }

  private sendText(): void {
    const c = this.current;
    const body = this.ui.text.value.trim();
    if (!c || c.left || !body) return;
    this.ui.text.value = '';
    this.stopTyping();
    void this.submit(c, { cmid: newCmid(), ts: Date.now(), body });
  }

  private sendFile(file: File): void {
    const c = this.current;
    if (!c || c.left) return;
    const mime = file.type || 'application/octet-stream';
    const p: Pending = { cmid: newCmid(), ts: Date.now(), media: { id: '', mime, size: file.size, name: file.name } };
    if (mime.startsWith('image/')) p.preview = URL.createObjectURL(file);
    void this.submit(c, p, file);
  }

  /** Shows our message at once (clock), uploads its file if any, sends it, and turns it into a sent message on the ack. */
  private async submit(c: Conv, p: Pending, file?: File): Promise<void> {
    c.pending.set(p.cmid, p);
    if (c === this.current) {
      this.showPending(p);
      this.stick = true;
      this.scrollToBottom();
    }
    this.scheduleList();
    try {
      if (file) {
        p.media = await this.client.upload(file, { mime: p.media!.mime, name: file.name });
        if (p.preview) this.mediaUrls.set(p.media.id, { url: p.preview, expires: Number.POSITIVE_INFINITY });
      }
      const ack = await this.client.send({
        ...(c.draft ? { to: c.peer! } : { conv: c.id }),
        cmid: p.cmid,
        ...(p.body !== undefined ? { body: p.body } : {}),
        ...(p.media ? { media: p.media } : {}),
      });
      const m: ChatMessage = { conv: ack.conv, seq: ack.seq, from: this.me, cmid: p.cmid, ts: ack.ts, kind: p.media ? 'media' : 'text' };
      if (p.body !== undefined) m.body = p.body;
      if (p.media) m.media = p.media;
      const wasDraft = c.draft;
      c.draft = false;
      this.settle(c, p, m);
      if (wasDraft) {
        this.watchPeers();
        if (ack.seq > 1) {
          // The conversation existed already: fetch what came before.
          c.more = true;
          c.oldest = null;
          if (c === this.current) void this.loadOlder(c).then(() => this.loadTicks(c));
        }
      }
    } catch (e) {
      p.failed = errText(e);
      if (e instanceof SwitchboardError && e.code === 'not_found' && c.kind === 'group') c.left = true;
      if (c === this.current) {
        this.rows.get(`p${p.cmid}`)?.replaceWith(pendingRow(p, this.media));
        this.renderComposer();
      }
    }
    this.scheduleList();
  }

  private typed(): void {
    const c = this.current;
    if (!c || c.draft || c.left) return;
    if (this.ui.text.value === '') return this.stopTyping();
    const now = Date.now();
    const t = this.typingOut;
    if ((!t || t.conv !== c.id || now - t.at > TYPING_RENEW_MS) && this.client.typing(c.id, true)) this.typingOut = { conv: c.id, at: now };
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  private stopTyping(): void {
    clearTimeout(this.typingTimer);
    if (this.typingOut) this.client.typing(this.typingOut.conv, false);
    this.typingOut = null;
  }

  // ---- rendering ------------------------------------------------------------------------------

  private scheduleList(): void {
    if (this.listQueued) return;
    this.listQueued = true;
    queueMicrotask(() => {
      this.listQueued = false;
      this.renderList();
    });
  }

  private renderList(): void {
    const convs = [...this.convs.values()].sort((a, b) => lastActivity(b) - lastActivity(a) || a.title.localeCompare(b.title));
    let total = 0;
    const items = convs.map((c) => {
      const n = unread(c);
      total += n;
      const p = c.peer ? this.presence.get(c.peer) : undefined;
      return convItem(c, { me: this.me, active: c === this.current, online: p?.online ?? false, open: () => void this.open(c) });
    });
    fill(this.ui.convs, ...items);
    if (items.length === 0) fill(this.ui.convs, h('li', { class: 'none' }, 'No conversations yet.'));
    document.title = total > 0 ? `(${total}) Switchboard` : 'Switchboard';
  }

  private renderHeader(): void {
    const c = this.current;
    if (!c) return;
    fill(this.ui.headAvatar, avatar(c.title, c.kind === 'group'));
    this.ui.title.textContent = c.title;
    const sub = this.ui.sub;
    const typing = [...c.typing.keys()];
    delete sub.dataset.online;
    if (typing.length > 0) {
      sub.dataset.kind = 'typing';
      sub.textContent = c.kind === 'direct' ? 'typing…' : `${typing.join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…`;
    } else if (c.kind === 'direct') {
      const p = this.presence.get(c.peer!);
      sub.dataset.kind = 'presence';
      if (p) sub.dataset.online = String(p.online);
      sub.textContent = c.draft ? 'new chat' : presenceText(p);
    } else {
      sub.dataset.kind = 'members';
      sub.textContent = c.members ? c.members.map((m) => who(m.user, this.me)).join(', ') : '';
    }
    this.ui.membersToggle.hidden = c.kind !== 'group' || c.left;
  }

  private renderMembers(): void {
    const c = this.current;
    if (!c || c.kind !== 'group' || this.ui.members.hidden) return;
    fill(
      this.ui.members,
      ...membersPanel(c, this.me, {
        remove: (user) => void this.groupOp(c, () => this.client.groupRemove(c.id, [user])),
        add: (users) => void this.groupOp(c, () => this.client.groupAdd(c.id, users)),
        leave: () =>
          void this.groupOp(c, async () => {
            await this.client.groupLeave(c.id);
            c.left = true;
            this.ui.members.hidden = true;
          }),
      }),
    );
  }

  private renderComposer(): void {
    const c = this.current;
    const left = c?.left ?? false;
    this.ui.composer.hidden = left;
    this.ui.leftNote.hidden = !left;
    if (left) this.ui.members.hidden = true;
  }

  private renderOlder(): void {
    const c = this.current;
    this.ui.older.hidden = !c || !c.more || c.oldest === null;
    this.ui.older.textContent = c && this.loading.has(c) ? 'Loading…' : 'Load earlier messages';
  }

  private showMsg(m: ChatMessage): void {
    const key = `s${m.seq}`;
    if (this.rows.has(key)) return;
    const row = msgRow(m, this.current!, this.me, this.media);
    this.rows.set(key, row);
    this.insertRow(row, m.seq);
    if (this.stick) this.scrollToBottom();
  }

  private showPending(p: Pending): void {
    const row = pendingRow(p, this.media);
    this.rows.set(`p${p.cmid}`, row);
    this.ui.list.append(row);
  }

  /** Places a row by seq: after the last row with a lower seq, before our messages in flight. */
  private insertRow(row: HTMLElement, seq: number): void {
    const list = this.ui.list;
    let after: Element | null = list.lastElementChild;
    while (after && (!(after instanceof HTMLElement) || after.dataset.seq === undefined || Number(after.dataset.seq) > seq)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(row);
    else list.prepend(row);
  }

  /** Our message was acknowledged: its row (clock) becomes the row of seq `m.seq` in place. */
  private settle(c: Conv, p: Pending, m: ChatMessage): void {
    c.pending.delete(p.cmid);
    const row = this.rows.get(`p${p.cmid}`);
    this.rows.delete(`p${p.cmid}`);
    if (row && c === this.current && !c.msgs.has(m.seq)) {
      row.dataset.seq = String(m.seq);
      row.removeAttribute('data-cmid');
      row.querySelector('time')!.textContent = clock(m.ts);
      row.querySelector('.ticks')?.replaceWith(ticks(tick(c, m.seq)));
      this.rows.set(`s${m.seq}`, row);
      row.remove();
      this.insertRow(row, m.seq);
    } else row?.remove();
    this.addMsg(m);
  }

  private updateTicks(): void {
    const c = this.current;
    if (!c) return;
    for (const [key, row] of this.rows) {
      if (key[0] !== 's' || !row.classList.contains('out')) continue;
      const state = tick(c, Number(row.dataset.seq));
      const el = row.querySelector<HTMLElement>('.ticks');
      if (el && el.dataset.state !== state) el.replaceWith(ticks(state));
    }
  }

  /** A photo (from its signed URL, or the local preview while it uploads) or a file button. */
  private readonly media: MediaView = (ref, preview) => {
    if (ref.mime.startsWith('image/')) {
      const img = h('img', { class: 'photo', alt: ref.name ?? 'photo' });
      img.addEventListener('load', () => {
        if (this.stick) this.scrollToBottom();
      });
      const load = (): void => {
        this.mediaUrl(ref.id).then((url) => (img.src = url), () => img.classList.add('broken'));
      };
      // A URL that stopped working (expired) is signed again, once.
      img.addEventListener('error', () => {
        if (!ref.id || img.classList.contains('retried')) return img.classList.add('broken');
        img.classList.add('retried');
        this.mediaUrls.delete(ref.id);
        load();
      });
      if (preview) img.src = preview;
      else if (ref.id) load();
      return img;
    }
    return h(
      'button',
      {
        type: 'button',
        class: 'file',
        onclick: () => ref.id && void this.mediaUrl(ref.id).then((url) => window.open(url, '_blank', 'noopener')),
      },
      `${ref.name ?? 'file'} · ${size(ref.size)}`,
    );
  };

  private scrollToBottom(): void {
    const el = this.ui.scroller;
    el.scrollTop = el.scrollHeight;
  }

  private toast(text: string): void {
    const t = this.ui.toast;
    t.textContent = text;
    t.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (t.hidden = true), 5_000);
  }
}

function errText(e: unknown): string {
  if (e instanceof SwitchboardError) return e.code === 'not_found' ? 'no such conversation, or you are not in it' : e.message;
  return e instanceof Error ? e.message : String(e);
}
