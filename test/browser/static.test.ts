/** The route that serves the built web app, and its settings (SB_WEB, SB_WEB_DIR). No browser needed. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../src/config.js';
import { staticRoute, webApp } from '../../src/gateway/static.js';
import { removeDir, tempDir } from '../helpers/node.js';

const SECRET = 'x'.repeat(32);
const silent = { debug() {}, info() {}, warn() {}, error() {} } as never;

function serve(dir: string): Promise<Server> {
  const route = staticRoute(dir);
  const server = createServer((req, res) => {
    void Promise.resolve(route(req, res, new URL(req.url ?? '/', 'http://x'))).then((handled) => {
      if (!handled) res.writeHead(404).end('not handled');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The path goes out as written (fetch would normalize `..` away). */
function get(server: Server, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web app route', () => {
  let dir: string;
  let empty: string;
  let server: Server;
  let bare: Server;

  beforeAll(async () => {
    dir = tempDir('sb-static-');
    empty = tempDir('sb-static-empty-');
    mkdirSync(join(dir, 'assets'));
    mkdirSync(join(dir, '.hidden'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="app"></div>');
    writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    writeFileSync(join(dir, '.hidden', 'secret.txt'), 'no');
    writeFileSync(join(dir, '.env'), 'no');
    [server, bare] = await Promise.all([serve(dir), serve(empty)]);
  });

  afterAll(async () => {
    await Promise.all([server, bare].map((s) => new Promise((r) => s?.close(r))));
    removeDir(dir);
    removeDir(empty);
  });

  it('serves index.html at / with a CSP, revalidated', async () => {
    const r = await get(server, '/');
    expect(r.status).toBe(200);
    expect(r.body).toContain('<div id="app">');
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
  });

  it('serves hashed assets for good, and HEAD without a body', async () => {
    const r = await get(server, '/assets/index-abc123.js');
    expect(r).toMatchObject({ status: 200, body: 'console.log(1)' });
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.headers['cache-control']).toContain('immutable');
    const head = await get(server, '/assets/index-abc123.js', 'HEAD');
    expect(head).toMatchObject({ status: 200, body: '' });
    expect(head.headers['content-length']).toBe('14');
  });

  it('leaves everything else to the other routes: other methods, missing files, dotfiles, paths outside', async () => {
    for (const path of ['/nope.js', '/assets', '/.env', '/.hidden/secret.txt', '/%2e%2e/package.json', '/assets/../../x', '/a%00b', '/%E0%A4%A']) {
      expect(await get(server, path), path).toMatchObject({ status: 404, body: 'not handled' });
    }
    expect(await get(server, '/', 'POST')).toMatchObject({ status: 404, body: 'not handled' });
  });

  it('explains how to build the app when it is not built', async () => {
    const r = await get(bare, '/');
    expect(r.status).toBe(503);
    expect(r.body).toContain('npm run build');
    expect((await get(bare, '/assets/x.js')).status).toBe(404);
  });

  it('settings: on with --dev, SB_WEB=1|0|true|false, a missing build stops a node that asked for the app', () => {
    expect(buildConfig({ jwtSecret: SECRET }).web).toBe(false);
    expect(buildConfig({ dev: true }).web).toBe(true);
    expect(buildConfig({ dev: true, web: '0' }).web).toBe(false);
    expect(buildConfig({ jwtSecret: SECRET, web: 'true', webDir: ' /srv/app ' })).toMatchObject({ web: true, webDir: '/srv/app' });
    expect(() => buildConfig({ jwtSecret: SECRET, web: 'yes please' })).toThrow(/^SB_WEB: /);

    expect(webApp(buildConfig({ jwtSecret: SECRET }), silent)).toBeNull();
    expect(webApp(buildConfig({ jwtSecret: SECRET, web: '1', webDir: dir }), silent)).toBeTypeOf('function');
    const missing = () => webApp(buildConfig({ jwtSecret: SECRET, web: '1', webDir: empty }), silent);
    expect(missing).toThrow(ConfigError);
    expect(missing).toThrow(/^SB_WEB_DIR: no built web app in /);
    // --dev with an explicit directory is just as strict; with the default it only warns.
    expect(() => webApp(buildConfig({ dev: true, webDir: empty }), silent)).toThrow(/^SB_WEB_DIR/);
  });
});
