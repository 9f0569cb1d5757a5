/**
 * Browser test fixtures: Debian's Chromium driven by playwright-core, the web app built by
 * Vite, and a node in-process that can be restarted on the same port and data dir.
 *
 * Chromium: CHROMIUM_PATH, else /usr/bin/chromium (Debian's `chromium` package), else the
 * usual other names. Missing, the browser tests skip with a message saying how to install
 * it, unless SB_REQUIRE_CHROMIUM=1 (CI), which makes them fail instead.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { removeDir, startTestNode, tempDir, type TestNode } from '../helpers/node.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WEB_SRC = join(ROOT, 'web');
const WEB_DIST = join(ROOT, 'dist', 'web');

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium executable, or null. */
export function findChromium(): string | null {
  const env = process.env.CHROMIUM_PATH;
  if (env) return existsSync(env) ? env : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export const CHROMIUM = findChromium();
export const SKIP_REASON =
  'Chromium not found (looked at CHROMIUM_PATH, /usr/bin/chromium): install it with `apt-get install -y chromium` to run the browser tests';

if (!CHROMIUM) {
  if (process.env.SB_REQUIRE_CHROMIUM === '1') throw new Error(`${SKIP_REASON} (SB_REQUIRE_CHROMIUM=1)`);
  process.stderr.write(`\n[browser tests skipped] ${SKIP_REASON}\n\n`);
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM!,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
  });
}

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    t = Math.max(t, st.isDirectory() ? newest(p) : st.mtimeMs);
  }
  return t;
}

/**
 * The built web app: dist/web when it is newer than its sources (web/, the SDK, the protocol),
 * else a fresh build into a temporary directory of this test file (parallel test files never
 * write the same directory). Returns the directory and a cleanup.
 */
export async function webBuild(): Promise<{ dir: string; cleanup: () => void }> {
  const index = join(WEB_DIST, 'index.html');
  const sources = Math.max(newest(WEB_SRC), newest(join(ROOT, 'src', 'client')), newest(join(ROOT, 'src', 'protocol')));
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return { dir: WEB_DIST, cleanup: () => {} };
  const dir = tempDir('sb-web-');
  const { build } = await import('vite');
  await build({ root: WEB_SRC, configFile: join(WEB_SRC, 'vite.config.ts'), logLevel: 'warn', build: { outDir: dir, emptyOutDir: true, sourcemap: false } });
  return { dir, cleanup: () => removeDir(dir) };
}

/** A node that can be stopped and started again on the same port and data dir (a restart). */
export class RestartableNode {
  private constructor(
    private tn: TestNode | null,
    readonly port: number,
    readonly dataDir: string,
    private readonly settings: Record<string, string>,
  ) {}

  static async start(settings: Record<string, string>): Promise<RestartableNode> {
    const tn = await startTestNode(settings);
    return new RestartableNode(tn, tn.port, tn.dataDir, settings);
  }

  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  token(user: string): Promise<string> {
    if (!this.tn) throw new Error('node is stopped');
    return this.tn.token(user);
  }

  async stop(): Promise<void> {
    const tn = this.tn;
    this.tn = null;
    await tn?.stop();
  }

  async start(): Promise<void> {
    if (this.tn) return;
    this.tn = await startTestNode({ ...this.settings, port: String(this.port) }, this.dataDir);
  }

  async destroy(): Promise<void> {
    await this.stop();
    removeDir(this.dataDir);
  }
}

/** A tab of the app signed in as `user` (a fresh page: sessionStorage is per tab). */
export async function signIn(context: BrowserContext, base: string, user: string): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (e) => process.stderr.write(`[${user} page error] ${e.message}\n`));
  await page.goto(`${base}/`);
  await page.fill('input[name=user]', user);
  await page.click('form.signin button[type=submit]');
  await page.locator('.me-name', { hasText: user }).waitFor();
  await page.locator('.banner').waitFor({ state: 'hidden' });
  return page;
}
