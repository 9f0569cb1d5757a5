/**
 * The page's parts: the frame of the app (built once; `App` fills it), and the elements for a
 * conversation in the list, a message, a message in flight, ticks and the members panel.
 */
import type { ChatMessage, MediaRef } from '../../src/client/index.js';
import { avatar, h, type Child } from './dom.js';
import { clock, previewText, shortTime, sysText, who } from './format.js';
import { icon } from './icons.js';
import { TICK_ICON, tick, unread, type Conv, type Pending, type TickState } from './model.js';

/** What the frame's controls do. */
export interface ShellActions {
  startChat(user: string): void;
  /** Resolves true when the group was created (the form is then cleared and closed). */
  createGroup(title: string, members: string[]): Promise<boolean>;
  signOut(): void;
  toggleMembers(): void;
  loadOlder(): void;
  scrolled(): void;
  sendText(): void;
  sendFile(file: File): void;
  typed(): void;
}

export type Shell = ReturnType<typeof shell>;

/** Shows a message's media: `preview` is a local object URL while our own upload is on its way. */
export type MediaView = (ref: MediaRef, preview?: string) => HTMLElement;

/** The sidebar, the conversation pane (header, members, messages, composer), banner and toast. */
export function shell(me: string, a: ShellActions) {
  const banner = h('div', { class: 'banner', role: 'status', hidden: true });
  const state = h('small', { class: 'conn' }, 'connecting');
  const peer = h('input', { name: 'peer', placeholder: 'New chat: user id', maxlength: 64, autocomplete: 'off', 'aria-label': 'User id to chat with' });
  const newChat = h(
    'form',
    {
      class: 'new-chat',
      onsubmit: (ev) => {
        ev.preventDefault();
        const user = peer.value.trim();
        if (user) a.startChat(user);
        peer.value = '';
      },
    },
    peer,
    h('button', { type: 'submit' }, 'Chat'),
  );
  const groupTitle = h('input', { name: 'title', placeholder: 'Group name', maxlength: 256, autocomplete: 'off' });
  const groupMembers = h('input', { name: 'members', placeholder: 'Members: bob, carol', autocomplete: 'off' });
  const newGroup = h(
    'form',
    {
      class: 'new-group',
      hidden: true,
      onsubmit: (ev) => {
        ev.preventDefault();
        const members = groupMembers.value.split(/[\s,]+/).filter(Boolean);
        void a.createGroup(groupTitle.value.trim(), members).then((ok) => {
          if (!ok) return;
          groupTitle.value = groupMembers.value = '';
          newGroup.hidden = true;
        });
      },
    },
    groupTitle,
    groupMembers,
    h('button', { type: 'submit' }, 'Create group'),
  );
  const groupToggle = h(
    'button',
    {
      type: 'button',
      class: 'icon-btn',
      title: 'New group',
      'aria-label': 'New group',
      onclick: () => {
        newGroup.hidden = !newGroup.hidden;
        if (!newGroup.hidden) groupTitle.focus();
      },
    },
    icon('users'),
  );
  const convs = h('ul', { class: 'convs', 'aria-label': 'Conversations' });
  const side = h(
    'aside',
    { class: 'side' },
    h(
      'header',
      { class: 'me' },
      avatar(me),
      h('div', { class: 'me-text' }, h('b', { class: 'me-name' }, me), state),
      groupToggle,
      h('button', { type: 'button', class: 'link', onclick: () => a.signOut() }, 'Sign out'),
    ),
    newChat,
    newGroup,
    convs,
  );

  const headAvatar = h('span', { class: 'head-avatar' });
  const title = h('b', { class: 'title' });
  const sub = h('small', { class: 'sub' });
  const membersToggle = h(
    'button',
    {
      type: 'button',
      class: 'icon-btn members-toggle',
      title: 'Members',
      'aria-label': 'Members',
      onclick: () => a.toggleMembers(),
    },
    icon('users'),
  );
  const back = h('button', { type: 'button', class: 'back link', onclick: () => app.classList.remove('chat-open') }, '‹');
  const head = h('header', { class: 'chat-head' }, back, headAvatar, h('div', { class: 'head-text' }, title, sub), membersToggle);
  const members = h('section', { class: 'members', hidden: true, 'aria-label': 'Members' });
  const older = h('button', { type: 'button', class: 'older', hidden: true, onclick: () => a.loadOlder() }, 'Load earlier messages');
  const list = h('ol', { class: 'list', 'aria-live': 'polite' });
  const scroller = h(
    'div',
    {
      class: 'msgs',
      onscroll: () => a.scrolled(),
    },
    older,
    list,
  );
  const file = h('input', {
    type: 'file',
    accept: 'image/*',
    hidden: true,
    onchange: () => {
      for (const f of Array.from(file.files ?? [])) a.sendFile(f);
      file.value = '';
    },
  });
  const text = h('input', { name: 'text', class: 'text', placeholder: 'Type a message', autocomplete: 'off', maxlength: 4000, oninput: () => a.typed() });
  const composer = h(
    'form',
    {
      class: 'composer',
      onsubmit: (ev) => {
        ev.preventDefault();
        a.sendText();
      },
    },
    h('button', { type: 'button', class: 'icon-btn attach', title: 'Send a photo', 'aria-label': 'Send a photo', onclick: () => file.click() }, icon('image')),
    file,
    text,
    h('button', { type: 'submit', class: 'icon-btn send', title: 'Send', 'aria-label': 'Send' }, icon('send')),
  );
  const leftNote = h('p', { class: 'left-note', hidden: true }, 'You are no longer a member of this group.');
  const chat = h('section', { class: 'chat', hidden: true }, head, members, scroller, composer, leftNote);
  const empty = h(
    'div',
    { class: 'empty' },
    h('h2', {}, `Hello, ${me}`),
    h('p', {}, 'Start a chat with a user id on the left, or create a group.'),
    h('p', { class: 'hint' }, 'Try it: open this page in a second tab and sign in there as somebody else.'),
  );
  const toast = h('div', { class: 'toast', role: 'alert', hidden: true });
  const app = h('div', { class: 'app' }, banner, side, h('main', { class: 'pane' }, chat, empty), toast);
  return { app, banner, state, convs, chat, empty, headAvatar, title, sub, membersToggle, members, older, scroller, list, text, composer, leftNote, toast };
}

/** One row of the conversation list. */
export function convItem(c: Conv, o: { me: string; active: boolean; online: boolean; open: () => void }): HTMLElement {
  const n = unread(c);
  const typing = c.typing.size > 0;
  const preview = typing ? 'typing…' : c.last ? previewText(c.last, o.me, c.kind === 'group') : c.draft ? 'New chat' : '';
  return h(
    'li',
    {},
    h(
      'button',
      { type: 'button', class: `conv${o.active ? ' active' : ''}`, 'data-conv': c.id, onclick: o.open },
      h('span', { class: `dot-wrap${o.online ? ' online' : ''}` }, avatar(c.title, c.kind === 'group')),
      h(
        'span',
        { class: 'conv-main' },
        h('span', { class: 'conv-top' }, h('b', { class: 'conv-title' }, c.title), h('time', {}, c.last ? shortTime(c.last.ts) : '')),
        h(
          'span',
          { class: 'conv-bottom' },
          h('span', { class: `preview${typing ? ' typing' : ''}` }, c.left ? `${preview} · left` : preview),
          n > 0 ? h('span', { class: 'unread', 'aria-label': `${n} unread` }, n) : null,
        ),
      ),
    ),
  );
}

export function ticks(state: TickState): HTMLElement {
  return h('span', { class: 'ticks', 'data-state': state, title: state, 'aria-label': state }, icon(TICK_ICON[state]));
}

/** A message of conversation `c` (ours get ticks; in groups, others' get their name). */
export function msgRow(m: ChatMessage, c: Conv, me: string, media: MediaView): HTMLElement {
  if (m.kind === 'system') return h('li', { class: 'msg sys', 'data-seq': m.seq }, h('span', { class: 'bubble' }, sysText(m, me)));
  const out = m.from === me;
  return h(
    'li',
    { class: `msg ${out ? 'out' : 'in'}`, 'data-seq': m.seq, 'data-from': m.from },
    h(
      'div',
      { class: 'bubble' },
      !out && c.kind === 'group' ? h('span', { class: 'from' }, m.from) : null,
      m.media ? media(m.media) : null,
      m.body !== undefined ? h('p', { class: 'body' }, m.body) : null,
      h('span', { class: 'meta' }, h('time', { title: new Date(m.ts).toLocaleString() }, clock(m.ts)), out ? ticks(tick(c, m.seq)) : null),
    ),
  );
}

/** Our message before its ack (a clock), or refused (with the reason). */
export function pendingRow(p: Pending, media: MediaView): HTMLElement {
  return h(
    'li',
    { class: `msg out${p.failed ? ' failed' : ''}`, 'data-cmid': p.cmid },
    h(
      'div',
      { class: 'bubble' },
      p.media ? media(p.media, p.preview) : null,
      p.body !== undefined ? h('p', { class: 'body' }, p.body) : null,
      p.failed ? h('small', { class: 'why' }, `Not sent: ${p.failed}`) : null,
      h('span', { class: 'meta' }, h('time', {}, clock(p.ts)), ticks(p.failed ? 'failed' : 'pending')),
    ),
  );
}

/** A group's members with their roles; admins also get Remove and Add. */
export function membersPanel(c: Conv, me: string, a: { remove(user: string): void; add(users: string[]): void; leave(): void }): Child[] {
  const admin = c.members?.some((m) => m.user === me && m.role === 'admin') ?? false;
  const add = h('input', { name: 'add', placeholder: 'Add: user id(s)', autocomplete: 'off' });
  return [
    h(
      'ul',
      {},
      ...(c.members ?? []).map((m) =>
        h(
          'li',
          { 'data-user': m.user },
          avatar(m.user),
          h('span', { class: 'who' }, who(m.user, me)),
          m.role === 'admin' ? h('small', { class: 'role' }, 'admin') : null,
          admin && m.user !== me ? h('button', { type: 'button', class: 'link remove', onclick: () => a.remove(m.user) }, 'Remove') : null,
        ),
      ),
    ),
    admin
      ? h(
          'form',
          {
            class: 'add-member',
            onsubmit: (ev) => {
              ev.preventDefault();
              const users = add.value.split(/[\s,]+/).filter(Boolean);
              if (users.length > 0) a.add(users);
            },
          },
          add,
          h('button', { type: 'submit' }, 'Add'),
        )
      : null,
    h('button', { type: 'button', class: 'link leave', onclick: () => a.leave() }, 'Leave group'),
  ];
}
