/**
 * The demo web app in a real browser: people in separate browser contexts chat through a
 * node in this process. Steps run in order and build on each other (one story): a DM whose
 * ticks go to read, typing, a photo, the screenshot for the README, presence (idle, back,
 * tab closed), a group of three with admin changes, scrolling back through history, and a
 * node restart with a message sent while it was down.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient } from '../../src/client/index.js';
import { CHROMIUM, launchBrowser, RestartableNode, ROOT, signIn, SKIP_REASON, webBuild } from './helpers.js';

/** Short, so that going idle is quick to see; long enough to tell a closed tab from an idle one. */
const ONLINE_WINDOW_MS = 4_000;
const DM = 'dm:alice:bob';
const VIEWPORT = { width: 720, height: 600 };

describe.skipIf(!CHROMIUM)(`web app in Chromium${CHROMIUM ? '' : ` (skipped: ${SKIP_REASON})`}`, () => {
  let node: RestartableNode;
  let web: { dir: string; cleanup: () => void };
  let browser: Browser;
  let ctxA: BrowserContext;
  let ctxB: BrowserContext;
  let ctxC: BrowserContext;
  let alice: Page;
  let bob: Page;
  let carol: Page;
  const clients: SwitchboardClient[] = [];

  beforeAll(async () => {
    web = await webBuild();
    [node, browser] = await Promise.all([
      RestartableNode.start({ webDir: web.dir, onlineWindowMs: String(ONLINE_WINDOW_MS) }),
      launchBrowser(),
    ]);
    const context = async () => {
      const ctx = await browser.newContext({ viewport: VIEWPORT });
      ctx.setDefaultTimeout(15_000); // a clear Playwright error before vitest's 30 s
      return ctx;
    };
    [ctxA, ctxB, ctxC] = await Promise.all([context(), context(), context()]);
    [alice, bob] = await Promise.all([signIn(ctxA, node.http, 'alice'), signIn(ctxB, node.http, 'bob')]);
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await browser?.close();
    await node?.destroy();
    web?.cleanup();
  });

  const row = (page: Page, sel: string) => page.locator(`.list ${sel}`);
  async function send(page: Page, text: string): Promise<void> {
    await page.fill('.composer .text', text);
    await page.press('.composer .text', 'Enter');
  }
  async function openConv(page: Page, conv: string): Promise<void> {
    await page.click(`.convs [data-conv="${conv}"]`);
    await page.locator('.chat-head .title').waitFor();
  }
  const unread = (page: Page, conv: string) => page.locator(`.convs [data-conv="${conv}"] .unread`);

  it('serves the app with a CSP, and no dotfiles or paths outside it', async () => {
    const res = await fetch(`${node.http}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await res.text()).toContain('<div id="app">');
    for (const path of ['/../package.json', '/assets/../../package.json', '/%2e%2e/package.json', '/.%2e/src/node.ts', '/.vite/manifest.json']) {
      expect(await rawStatus(node.port, path), path).toBe(404);
    }
    expect(await rawStatus(node.port, '/favicon.svg')).toBe(200);
    expect((await fetch(`${node.http}/healthz`)).status).toBe(200);
  });

  it('DM: the ticks go sent → delivered → read, with unread counts and typing', async () => {
    await alice.fill('.new-chat input', 'bob');
    await alice.press('.new-chat input', 'Enter');
    await alice.locator('.chat-head .title', { hasText: 'bob' }).waitFor();
    await send(alice, 'Hi Bob! Lunch today?');
    // bob is online and receives it (delivered) but has not opened the chat (not read).
    await row(alice, '.msg.out[data-seq="1"] .ticks[data-state="delivered"]').waitFor();
    await unread(bob, DM).filter({ hasText: /^1$/ }).waitFor();
    await openConv(bob, DM);
    await row(bob, '.msg.in[data-seq="1"]', ).filter({ hasText: 'Lunch today?' }).waitFor();
    await row(alice, '.msg.out[data-seq="1"] .ticks[data-state="read"]').waitFor();
    await unread(bob, DM).waitFor({ state: 'detached' });

    // bob types: alice sees it in the header and in her list; his message clears it.
    await bob.fill('.composer .text', 'Sure');
    await alice.locator('.chat-head .sub[data-kind="typing"]', { hasText: 'typing…' }).waitFor();
    await send(bob, 'Sure, 12:30 at the usual place?');
    await row(alice, '.msg.in[data-seq="2"]').filter({ hasText: '12:30' }).waitFor();
    await alice.locator('.chat-head .sub[data-kind="presence"]').waitFor();
    // alice has the chat open: bob's message is read at once.
    await row(bob, '.msg.out[data-seq="2"] .ticks[data-state="read"]').waitFor();
    await send(alice, 'Perfect, see you there');
    await row(alice, '.msg.out[data-seq="3"] .ticks[data-state="read"]').waitFor();
  });

  it('sends a photo: uploaded with media.put, shown from its signed URL', async () => {
    const png = await alice.evaluate(`(() => {
      const c = document.createElement('canvas');
      c.width = 360; c.height = 220;
      const g = c.getContext('2d');
      const grad = g.createLinearGradient(0, 0, 360, 220);
      grad.addColorStop(0, '#00a884'); grad.addColorStop(1, '#53bdeb');
      g.fillStyle = grad; g.fillRect(0, 0, 360, 220);
      g.fillStyle = '#fff'; g.beginPath(); g.arc(280, 60, 26, 0, 7); g.fill();
      g.fillStyle = 'rgba(0,60,50,.55)';
      g.beginPath(); g.moveTo(0, 220); g.lineTo(120, 90); g.lineTo(210, 170); g.lineTo(260, 130); g.lineTo(360, 220); g.fill();
      return c.toDataURL('image/png').split(',')[1];
    })()`);
    await alice.setInputFiles('.composer input[type=file]', { name: 'view.png', mimeType: 'image/png', buffer: Buffer.from(String(png), 'base64') });
    await row(alice, '.msg.out[data-seq="4"] img.photo').waitFor();
    const img = row(bob, '.msg.in[data-seq="4"] img.photo');
    await img.waitFor();
    await bob.waitForFunction(() => {
      const el = document.querySelector<HTMLImageElement>('.msg[data-seq="4"] img.photo');
      return !!el && el.complete && el.naturalWidth === 360;
    });
    expect(await img.getAttribute('src')).toMatch(new RegExp(`^${node.http}/media/[^?]+\\?op=get&`));
    await row(alice, '.msg.out[data-seq="4"] .ticks[data-state="read"]').waitFor();
    await alice.locator(`.convs [data-conv="${DM}"] .preview`, { hasText: /^You: Photo$/ }).waitFor();
  });

  it('takes the README screenshot: two tabs chatting', async () => {
    await send(alice, 'The view from the office today');
    await row(bob, '.msg.in').filter({ hasText: 'view from the office' }).waitFor();
    await bob.locator('.chat-head .sub[data-online="true"]').waitFor();
    await bob.fill('.composer .text', 'Wow, where is th');
    await alice.locator('.chat-head .sub[data-kind="typing"]').waitFor();
    const [a, b] = await Promise.all([alice.screenshot(), bob.screenshot()]);
    const page = await ctxC.newPage();
    await page.setViewportSize({ width: 1200, height: 512 });
    await page.setContent(
      `<body style="margin:0;background:#c8ccd0;display:flex;gap:8px;padding:8px;box-sizing:border-box">` +
        [a, b].map((png) => `<img style="width:588px;border-radius:6px" src="data:image/png;base64,${png.toString('base64')}">`).join('') +
        `</body>`,
    );
    const shot = await page.screenshot();
    await page.close();
    // docs/screenshot.png is written when missing or with SB_SCREENSHOT=1 (so test runs leave the tree clean).
    const docs = join(ROOT, 'docs', 'screenshot.png');
    const target = !existsSync(docs) || process.env.SB_SCREENSHOT === '1' ? docs : join(tmpdir(), 'switchboard-screenshot.png');
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(target, shot);
    process.stderr.write(`[browser] screenshot: ${target}\n`);
    await bob.fill('.composer .text', '');
  });

  it('presence: online, last seen after going idle, online again, offline when the tab closes', async () => {
    const sub = alice.locator('.chat-head .sub');
    await send(bob, 'brb');
    await row(bob, '.msg.out .ticks[data-state="read"]').last().waitFor();
    const activeAt = Date.now();
    await alice.locator('.chat-head .sub[data-online="true"]').waitFor();
    // Nothing happens in bob's tab: after the online window he is offline, with a last seen time.
    await alice.locator('.chat-head .sub[data-online="false"]').waitFor({ timeout: ONLINE_WINDOW_MS + 6_000 });
    expect(Date.now() - activeAt).toBeGreaterThan(ONLINE_WINDOW_MS - 1_500);
    expect(await sub.textContent()).toMatch(/^last seen (today|yesterday) at \d/);

    await send(bob, 'back!');
    await alice.locator('.chat-head .sub[data-online="true"]').waitFor();
    const closedAt = Date.now();
    await bob.close();
    await alice.locator('.chat-head .sub[data-online="false"]').waitFor();
    // Well before the online window lapses: the closed connection did it.
    expect(Date.now() - closedAt).toBeLessThan(ONLINE_WINDOW_MS - 1_500);
    expect(await sub.textContent()).toMatch(/^last seen (today|yesterday) at \d/);
  });

  it('a group of three: create, chat, ticks to read, remove and add members', async () => {
    [bob, carol] = await Promise.all([signIn(ctxB, node.http, 'bob'), signIn(ctxC, node.http, 'carol')]);
    await alice.click('button[title="New group"]');
    await alice.fill('.new-group input[name=title]', 'Weekend hike');
    await alice.fill('.new-group input[name=members]', 'bob, carol');
    await alice.click('.new-group button[type=submit]');
    await alice.locator('.chat-head .title', { hasText: 'Weekend hike' }).waitFor();
    await row(alice, '.msg.sys').filter({ hasText: 'You created the group “Weekend hike”' }).waitFor();
    await alice.locator('.chat-head .sub[data-kind="members"]', { hasText: 'You, bob, carol' }).waitFor();
    const group = (await alice.locator('.convs .conv.active').getAttribute('data-conv'))!;
    expect(group).toMatch(/^g:/);

    await send(alice, 'Who is in for Saturday?');
    await row(alice, '.msg.out[data-seq="2"] .ticks[data-state="delivered"]').waitFor();
    await unread(bob, group).filter({ hasText: '2' }).waitFor();
    await unread(carol, group).filter({ hasText: '2' }).waitFor();

    await openConv(carol, group);
    await row(carol, '.msg.in[data-seq="2"] .from').filter({ hasText: 'alice' }).waitFor();
    await send(carol, 'Me! Count me in');
    await row(alice, '.msg.in[data-seq="3"]').filter({ hasText: 'Me!' }).waitFor();
    expect(await row(alice, '.msg.in[data-seq="3"] .from').textContent()).toBe('carol');
    // Read by carol but not by bob: not read yet.
    expect(await row(alice, '.msg.out[data-seq="2"] .ticks').getAttribute('data-state')).toBe('delivered');
    await openConv(bob, group);
    await row(bob, '.msg.in[data-seq="3"]').waitFor();
    await row(alice, '.msg.out[data-seq="2"] .ticks[data-state="read"]').waitFor();

    // alice (admin) removes carol, then adds dave.
    await alice.click('.members-toggle');
    await alice.locator('.members [data-user="carol"] .remove').click();
    await row(alice, '.msg.sys').filter({ hasText: 'You removed carol' }).waitFor();
    await row(carol, '.msg.sys').filter({ hasText: 'alice removed You' }).waitFor();
    await carol.locator('.left-note').waitFor();
    expect(await carol.locator('.composer').isHidden()).toBe(true);
    await alice.fill('.members input[name=add]', 'dave');
    await alice.press('.members input[name=add]', 'Enter');
    await row(bob, '.msg.sys').filter({ hasText: 'alice added dave' }).waitFor();
    await alice.locator('.members [data-user="dave"]').waitFor();
    await alice.locator('.chat-head .sub', { hasText: 'You, bob, dave' }).waitFor();
    await carol.close();
  });

  it('scrolls back through history', async () => {
    // alice's second device (the SDK in Node) sends 45 messages to the DM.
    const phone = new SwitchboardClient({ url: node.ws, token: await node.token('alice'), device: 'phone' });
    clients.push(phone);
    await phone.connect();
    for (let i = 1; i <= 45; i++) await phone.send({ conv: DM, body: `note ${i} of 45` });
    await phone.close();
    await bob.reload();
    await bob.locator('.me-name', { hasText: 'bob' }).waitFor();
    await unread(bob, DM).filter({ hasText: '45' }).waitFor();
    await openConv(bob, DM);
    await row(bob, '.msg').filter({ hasText: 'note 45 of 45' }).waitFor();
    expect(await row(bob, '.msg[data-seq="1"]').count()).toBe(0);
    // Scrolled to the top, the older pages load, down to the first message.
    for (let i = 0; i < 5 && (await row(bob, '.msg[data-seq="1"]').count()) === 0; i++) {
      await bob.locator('.msgs').evaluate((el) => el.scrollTo(0, 0));
      await bob.waitForTimeout(300);
    }
    await row(bob, '.msg[data-seq="1"]').filter({ hasText: 'Lunch today?' }).waitFor();
    await bob.locator('.older').waitFor({ state: 'hidden' });
    const seqs = await bob.$$eval('.list .msg[data-seq]', (els) => els.map((e) => Number((e as HTMLElement).dataset.seq)));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(seqs.length).toBeGreaterThanOrEqual(51);
  });

  it('reconnects after the node restarts: a banner meanwhile, then what was sent arrives', async () => {
    await openConv(alice, DM);
    await node.stop();
    await alice.locator('.banner[data-state="reconnecting"]').waitFor();
    await bob.locator('.banner[data-state="reconnecting"]').waitFor();
    expect(await alice.locator('.banner').textContent()).toContain('Reconnecting');
    await send(bob, 'sent while the node was down');
    await row(bob, '.msg.out[data-cmid] .ticks[data-state="pending"]').waitFor();

    await node.start();
    await alice.locator('.banner').waitFor({ state: 'hidden', timeout: 15_000 });
    await bob.locator('.banner').waitFor({ state: 'hidden', timeout: 15_000 });
    await row(alice, '.msg.in').filter({ hasText: 'sent while the node was down' }).waitFor();
    await row(bob, '.msg.out').filter({ hasText: 'sent while the node was down' }).locator('.ticks[data-state="read"]').waitFor();
    // Still one copy of everything, in order.
    const seqs = await alice.$$eval('.list .msg[data-seq]', (els) => els.map((e) => Number((e as HTMLElement).dataset.seq)));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });
});

/** The status of a GET with the path sent as is (fetch would normalize the dots away). */
function rawStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}
