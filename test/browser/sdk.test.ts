/**
 * The SDK in the browser: src/client is bundled by Vite for the browser (failing on any Node
 * built-in), served by the node as its web app (SB_WEB_DIR) under the app's CSP, and driven in
 * a Chromium page with the platform WebSocket and fetch, in both encodings. Node checks the
 * results and plays the other party with the same SDK on `ws`.
 */
import { builtinModules } from 'node:module';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient, type ChatMessage, type MediaRef } from '../../src/client/index.js';
import { removeDir, tempDir } from '../helpers/node.js';
import { CHROMIUM, launchBrowser, RestartableNode, ROOT, SKIP_REASON } from './helpers.js';

const NODE_BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** Bundles src/client for browsers into `dir` with a page that puts the SDK on `window.SB`. */
async function bundleSdk(dir: string): Promise<string[]> {
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: ROOT,
    logLevel: 'warn',
    plugins: [
      {
        name: 'no-node-builtins',
        enforce: 'pre',
        resolveId(id: string, importer?: string) {
          if (NODE_BUILTINS.has(id)) throw new Error(`the browser bundle imports the Node built-in '${id}' (from ${importer})`);
          return null;
        },
      },
    ],
    build: {
      outDir: dir,
      emptyOutDir: true,
      minify: false,
      target: 'es2022',
      lib: { entry: join(ROOT, 'src/client/index.ts'), formats: ['es'], fileName: 'sdk' },
    },
  });
  writeFileSync(join(dir, 'harness.js'), `import * as SB from './sdk.js';\nwindow.SB = SB;\ndocument.title = 'ready';\n`);
  writeFileSync(join(dir, 'index.html'), `<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/harness.js"></script>`);
  return readdirSync(dir);
}

type Win = Window & { SB: typeof import('../../src/client/index.js'); c: SwitchboardClient; events: unknown[][] };

/** Creates `window.c`, a SwitchboardClient of the bundle, recording its events in `window.events`. */
function openClient(page: Page, opts: { url: string; token: string; encoding: 'json' | 'msgpack' }) {
  return page.evaluate(async ({ url, token, encoding }) => {
    const w = window as unknown as Win;
    const c = new w.SB.SwitchboardClient({ url, token, encoding, autoRecv: true, reconnect: { minMs: 100, maxMs: 1_000 } });
    w.c = c;
    w.events = [];
    c.on('msg', (m) => w.events.push(['msg', m.conv, m.seq, m.body ?? null]));
    c.on('synced', () => w.events.push(['synced']));
    c.on('receipt', (r) => w.events.push(['receipt', r.kind, r.seq]));
    c.on('state', (s) => w.events.push(['state', s]));
    c.on('welcome', () => w.events.push(['welcome']));
    const welcome = await c.connect();
    return { welcome, socket: typeof WebSocket, node: typeof (globalThis as { process?: unknown }).process };
  }, opts);
}

const events = (page: Page) => page.evaluate(() => (window as unknown as Win).events);
/** Waits for an event that starts with `want` (a function, not a string: the page's CSP forbids eval). */
const until = (page: Page, ...want: unknown[]) =>
  page.waitForFunction((w) => ((window as unknown as Win).events ?? []).some((e) => w.every((x, i) => e[i] === x)), want, { timeout: 15_000 });

describe.skipIf(!CHROMIUM)(`the SDK bundled for the browser${CHROMIUM ? '' : ` (skipped: ${SKIP_REASON})`}`, () => {
  let dir: string;
  let files: string[];
  let node: RestartableNode;
  let browser: Browser;
  const clients: SwitchboardClient[] = [];

  beforeAll(async () => {
    dir = tempDir('sb-sdk-web-');
    [files, browser] = await Promise.all([bundleSdk(dir), launchBrowser()]);
    node = await RestartableNode.start({ web: '1', webDir: dir });
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await browser?.close();
    await node?.destroy();
    if (dir) removeDir(dir);
  });

  async function nodeClient(user: string, encoding: 'json' | 'msgpack' = 'json'): Promise<SwitchboardClient> {
    const c = new SwitchboardClient({ url: node.ws, token: await node.token(user), encoding, reconnect: { minMs: 100, maxMs: 1_000 } });
    clients.push(c);
    await c.connect();
    return c;
  }

  async function harness(): Promise<Page> {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => process.stderr.write(`[sdk page error] ${e.message}\n`));
    await page.goto(`${node.http}/`);
    await page.waitForFunction(() => document.title === 'ready');
    return page;
  }

  it('bundles without Node built-ins; the ws package is only a stub chunk never loaded in browsers', () => {
    expect(files).toContain('sdk.js');
    const code = files.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
    expect(code).not.toMatch(/from\s*["']node:|require\(["']/);
    expect(code).toMatch(/export \{[^}]*\bSwitchboardClient\b/);
  });

  for (const encoding of ['json', 'msgpack'] as const) {
    it(`${encoding}: connect, send, receive, receipts and media, in the page`, async () => {
      const page = await harness();
      const me = `pat-${encoding}`;
      const peer = await nodeClient(`nia-${encoding}`, encoding);
      const opened = await openClient(page, { url: node.ws, token: await node.token(me), encoding });
      expect(opened).toMatchObject({ welcome: { user: me }, socket: 'function', node: 'undefined' });

      // The page sends; Node receives.
      const got = peer.waitFor('msg', (m) => m.body === 'hello from the browser');
      const ack = await page.evaluate((to) => (window as unknown as Win).c.send({ to, body: 'hello from the browser' }), peer.user!);
      expect(ack).toMatchObject({ conv: `dm:${peer.user}:${me}`, seq: 1 });
      expect((await got).from).toBe(me);

      // Node reads it: the page gets the receipt. Node answers: the page gets it (and acknowledges it).
      peer.read(ack.conv, 1);
      await until(page, 'receipt', 'read', 1);
      const delivered = peer.waitFor('receipt', (r) => r.kind === 'delivered' && r.seq === 2);
      await peer.send({ conv: ack.conv, body: 'hello from node' });
      await until(page, 'msg', ack.conv, 2, 'hello from node');
      await delivered;

      // Media: the page uploads with fetch to the signed URL and sends it; Node downloads the bytes.
      const fromPeer = peer.waitFor('msg', (m) => m.kind === 'media');
      const sent = await page.evaluate(async (conv) => {
        const c = (window as unknown as Win).c;
        const bytes = new TextEncoder().encode('bytes from a browser ✓');
        const media = await c.upload(new Blob([bytes], { type: 'text/plain' }), { mime: 'text/plain', name: 'note.txt' });
        const a = await c.send({ conv, media });
        const back = await c.download(media);
        return { media, seq: a.seq, text: new TextDecoder().decode(back.data), mime: back.mime };
      }, ack.conv);
      expect(sent).toMatchObject({ seq: 3, text: 'bytes from a browser ✓', mime: 'text/plain' });
      const m: ChatMessage = await fromPeer;
      expect(m.media).toEqual(sent.media as MediaRef);
      const down = await peer.download(m.media!);
      expect(new TextDecoder().decode(down.data)).toBe('bytes from a browser ✓');
      await page.evaluate(() => (window as unknown as Win).c.close());
      await page.close();
    });
  }

  it('reconnects after the node restarts; the backlog comes once, in order, before synced', async () => {
    const page = await harness();
    const peer = await nodeClient('nia-r');
    await openClient(page, { url: node.ws, token: await node.token('pat-r'), encoding: 'json' });
    const conv = (await peer.send({ to: 'pat-r', body: 'm1' })).conv;
    await until(page, 'msg', conv, 1);

    // The node restarts (same port, same data): the page reconnects by itself.
    await node.stop();
    await until(page, 'state', 'reconnecting');
    await node.start();
    await page.waitForFunction(() => (window as unknown as Win).events.filter((e) => e[0] === 'welcome').length === 2, undefined, { timeout: 15_000 });
    await peer.connect();
    await peer.send({ conv, body: 'm2' });
    await until(page, 'msg', conv, 2);
    // A send from the page queued while the connection is gone goes out after the next welcome.
    await node.stop();
    await until(page, 'state', 'reconnecting');
    const queued = page.evaluate((c) => (window as unknown as Win).c.send({ conv: c, body: 'm3 (queued while down)' }), conv);
    await node.start();
    expect((await queued).seq).toBe(3);
    await peer.connect();

    // Offline for good: what the peer sends meanwhile comes as the backlog of the next session:
    // everything above the delivered watermark, which covers 3 once m2 is acknowledged (delivery
    // is at-least-once, so wait until the node has stored that before leaving).
    const delivered = (c: string) =>
      page.evaluate(async (x) => (await (window as unknown as Win).c.convs()).find((i) => i.conv === x)?.delivered ?? 0, c);
    for (let i = 0; i < 100 && (await delivered(conv)) < 3; i++) await page.waitForTimeout(50);
    expect(await delivered(conv)).toBe(3);
    await page.evaluate(() => (window as unknown as Win).c.close());
    await peer.send({ conv, body: 'm4' });
    await peer.send({ conv, body: 'm5' });
    await openClient(page, { url: node.ws, token: await node.token('pat-r'), encoding: 'json' });
    await until(page, 'synced');
    const evs = (await events(page)).filter((e) => e[0] === 'msg' || e[0] === 'synced');
    expect(evs).toEqual([
      ['msg', conv, 4, 'm4'],
      ['msg', conv, 5, 'm5'],
      ['synced'],
    ]);
    // sync on demand delivers again what it is asked for.
    const synced = await page.evaluate((c) => (window as unknown as Win).c.sync({ [c]: 0 }).then((r) => r.msgs.map((m) => m.seq)), conv);
    expect(synced).toEqual([1, 2, 3, 4, 5]);
    await page.evaluate(() => (window as unknown as Win).c.close());
    await page.close();
  });
});
