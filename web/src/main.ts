/** Entry point: the sign-in form, then the chat. */
import './style.css';
import { App } from './app.js';
import { clearSession, devToken, loadSession, NoDevTokens, saveSession, tokenUser, USER_RE, type Session } from './auth.js';
import { fill, h } from './dom.js';

const root = document.getElementById('app')!;

function start(session: Session): void {
  const app = new App(root, session, () => {
    clearSession();
    signIn();
  });
  app.start();
}

function signIn(note = ''): void {
  const error = h('p', { class: 'error', role: 'alert' }, note);
  const name = h('input', { name: 'user', placeholder: 'Your name, e.g. alice', autocomplete: 'username', required: true, maxlength: 64, autofocus: true });
  const token = h('textarea', { name: 'token', rows: 3, placeholder: 'eyJhbGciOiJIUzI1NiIs…' });
  const tokenBox = h('label', { class: 'token', hidden: true }, 'This node hands out no dev tokens. Paste a token (a JWT signed with SB_JWT_SECRET):', token);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin',
      onsubmit: (ev) => {
        ev.preventDefault();
        void submit();
      },
    },
    h('h1', {}, 'Switchboard'),
    h('p', { class: 'hint' }, 'Pick a name and chat with another tab signed in as somebody else.'),
    name,
    tokenBox,
    button,
    error,
  );

  async function submit(): Promise<void> {
    error.textContent = '';
    const pasted = token.value.trim();
    if (pasted) {
      const user = tokenUser(pasted);
      if (!user) return void (error.textContent = 'That is not a token with a user id (sub).');
      saveSession({ user, token: pasted });
      return start({ user, token: pasted });
    }
    const user = name.value.trim();
    if (!USER_RE.test(user)) return void (error.textContent = 'A name is 1–64 letters, digits or . _ @ -');
    button.disabled = true;
    try {
      await devToken(user);
      saveSession({ user });
      start({ user });
    } catch (e) {
      if (e instanceof NoDevTokens) {
        tokenBox.hidden = false;
        name.required = false;
        token.focus();
      } else error.textContent = `Cannot sign in: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      button.disabled = false;
    }
  }

  fill(root, h('main', { class: 'signin-page' }, form));
  name.focus();
}

const saved = loadSession();
if (saved) start(saved);
else signIn();
