/**
 * The demo web app (web/, built by Vite to dist/web) served at `/` by the gateway: on with
 * `--dev`, and in production with `SB_WEB=1`. GET and HEAD of the files of one directory,
 * nothing else: no listing, no path outside it, no fallback page. Vite's hashed files under
 * /assets/ are cached for good; everything else is revalidated. Pages get a CSP that allows
 * scripts and styles of this origin only (media may come from S3, so images and uploads may
 * go to any http(s) origin).
 */
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { Log } from '../actors/ports/index.js';
import { ConfigError, type Config } from '../config.js';

export type HttpRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

/** dist/web of this installation (from src/gateway or dist/gateway alike). */
export const DEFAULT_WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data: http: https:",
  "connect-src 'self' ws: wss: http: https:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Switchboard</title>
<body style="font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;line-height:1.5">
<h1>The web app is not built</h1><p>Run <code>npm run build</code> (or <code>npm run dev</code>) and reload this page.</p>`;

/**
 * The route serving the app, or null when `SB_WEB` is off. A missing build stops the node
 * when the app was asked for (`SB_WEB=1` or `SB_WEB_DIR`); in `--dev` with the default
 * directory it only warns, and `/` explains how to build it.
 */
export function webApp(config: Config, log: Log): HttpRoute | null {
  if (!config.web) return null;
  const dir = resolve(config.webDir ?? DEFAULT_WEB_DIR);
  if (!existsSync(join(dir, 'index.html'))) {
    if (!config.dev || config.webDir !== null) {
      throw new ConfigError(config.webDir !== null ? 'SB_WEB_DIR' : 'SB_WEB', `no built web app in ${dir} (run npm run build)`);
    }
    log.warn({ dir }, 'web app not built: run npm run build');
  }
  return staticRoute(dir);
}

/** GET/HEAD of the files under `dir`; `/` is index.html. False (not handled) for anything else. */
export function staticRoute(dir: string): HttpRoute {
  const root = resolve(dir);
  return async (req, res, url) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    let rel: string;
    try {
      rel = decodeURIComponent(url.pathname);
    } catch {
      return false;
    }
    if (rel === '/') rel = '/index.html';
    if (rel.includes('\0') || rel.split('/').some((part) => part.startsWith('.'))) return false;
    const file = resolve(root, `.${rel}`);
    if (!file.startsWith(root + sep)) return false;
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) return false;
      size = st.size;
    } catch {
      if (rel !== '/index.html') return false;
      send(res, 503, 'text/html; charset=utf-8', NOT_BUILT, req.method === 'HEAD');
      return true;
    }
    const ext = extname(file).toLowerCase();
    const headers: Record<string, string> = {
      'content-type': TYPES[ext] ?? 'application/octet-stream',
      'content-length': String(size),
      'cache-control': rel.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (ext === '.html') headers['content-security-policy'] = CSP;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    try {
      await pipeline(createReadStream(file), res);
    } catch {
      res.destroy();
    }
    return true;
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-cache' });
  res.end(head ? undefined : body);
}
