/**
 * The default MediaStore: files under `dir` (SB_DATA_DIR/media), uploaded and downloaded
 * through the node's own HTTP server (`route`, mounted by the gateway at /media/) with
 * HMAC-signed, expiring URLs.
 *
 * URL: `<base>/media/<key>?op=put|get&size=<n>&type=<mime>&exp=<ms>&sig=<hmac>`; the HMAC
 * (SHA-256, key derived from the node secret) covers op, key, size, type and exp, so a
 * client can neither stretch the expiry nor change the size or the type. Wrong or expired
 * signature: 403.
 *
 * PUT streams the body to a temporary file next to the target while counting and hashing
 * it: more bytes than signed aborts at once (413, the partial file removed), fewer is 400,
 * a Content-Type other than the signed one is 403. Exactly `size` bytes: fsync, rename into
 * place, then the `onUploaded` hook records completion (size and SHA-256) before the 200.
 * GET (and HEAD) serve the bytes with the signed type, `nosniff` and a sandbox CSP, so an
 * uploaded HTML file never runs as a page of the node's origin.
 *
 * Files are spread over 64² subdirectories by the first two characters of the key. In a
 * cluster every node would need the same directory (a shared filesystem): use S3 there.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type {
  DownloadTicket,
  Log,
  MediaStore,
  PresignOptions,
  StoredObject,
  UploadedHook,
  UploadTicket,
} from '../actors/ports/index.js';

export interface FsMediaStoreOptions {
  /** Directory of the files (created if missing). */
  dir: string;
  /** Secret the URL signatures are derived from (the node's JWT secret). */
  secret: string;
  /** Public base URL (SB_MEDIA_BASE_URL); wins over the client's origin. */
  baseUrl: string | null;
  /** Base URL when neither `baseUrl` nor a client origin is known (the node's listen address). */
  fallbackBaseUrl(): string;
  log: Log;
  /** Records a finished upload; resolves false when no such upload is expected (the bytes are then removed). */
  onUploaded?: UploadedHook;
  now?: () => number;
}

const KEY_RE = /^[A-Za-z0-9_-]{8,128}$/;
export const FS_MEDIA_PATH = '/media/';

export class FsMediaStore implements MediaStore {
  readonly kind = 'fs' as const;
  private readonly hmacKey: Buffer;
  private readonly now: () => number;
  private onUploaded: UploadedHook | undefined;

  constructor(private readonly opts: FsMediaStoreOptions) {
    this.hmacKey = createHmac('sha256', opts.secret).update('switchboard media urls v1').digest();
    this.now = opts.now ?? Date.now;
    this.onUploaded = opts.onUploaded;
  }

  /** Set the completion hook (the composition root builds the store before the service that records uploads). */
  setUploadedHook(hook: UploadedHook): void {
    this.onUploaded = hook;
  }

  async presignPut(key: string, mime: string, size: number, expires: number, opts?: PresignOptions): Promise<UploadTicket> {
    checkKey(key);
    const url = this.url('put', key, mime, expires, size, opts);
    return { url, method: 'PUT', headers: { 'content-type': mime }, expires };
  }

  async presignGet(key: string, mime: string, expires: number, opts?: PresignOptions): Promise<DownloadTicket> {
    checkKey(key);
    return { url: this.url('get', key, mime, expires, undefined, opts), expires };
  }

  async verify(key: string, expectedSize: number): Promise<StoredObject | null> {
    checkKey(key);
    const path = this.path(key);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    if (size !== expectedSize) return { size };
    const hash = createHash('sha256');
    await pipeline(createReadStream(path), hash);
    return { size, sha256: hash.digest('hex') };
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    await unlink(this.path(key)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  async close(): Promise<void> {}

  /** The gateway route for /media/<key>; true when the request was for it. */
  readonly route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> => {
    if (!url.pathname.startsWith(FS_MEDIA_PATH)) return false;
    let key: string;
    try {
      key = decodeURIComponent(url.pathname.slice(FS_MEDIA_PATH.length));
    } catch {
      key = '';
    }
    const method = req.method ?? '';
    if (method !== 'PUT' && method !== 'GET' && method !== 'HEAD') {
      reply(res, 405, 'method not allowed', { allow: 'GET, HEAD, PUT' });
      return true;
    }
    const q = url.searchParams;
    const op = q.get('op');
    const type = q.get('type') ?? '';
    const exp = Number(q.get('exp'));
    const sizeParam = q.get('size');
    const size = sizeParam === null ? undefined : Number(sizeParam);
    const expectedOp = method === 'PUT' ? 'put' : 'get';
    if (
      !KEY_RE.test(key) ||
      op !== expectedOp ||
      !Number.isSafeInteger(exp) ||
      (op === 'put' && (size === undefined || !Number.isSafeInteger(size) || size < 0)) ||
      !this.validSignature(q.get('sig') ?? '', op, key, type, exp, op === 'put' ? size : undefined)
    ) {
      reply(res, 403, 'signature does not match');
      return true;
    }
    if (exp <= this.now()) {
      reply(res, 403, 'url expired');
      return true;
    }
    if (op === 'put') await this.receive(req, res, key, type, size!);
    else await this.serve(res, key, type, method === 'HEAD');
    return true;
  };

  // ------------------------------------------------------------------ internals

  private path(key: string): string {
    return join(this.opts.dir, key.slice(0, 2), key);
  }

  private url(op: 'put' | 'get', key: string, mime: string, exp: number, size: number | undefined, opts?: PresignOptions): string {
    const base = (this.opts.baseUrl ?? opts?.origin ?? this.opts.fallbackBaseUrl()).replace(/\/+$/, '');
    const q = new URLSearchParams({ op });
    if (size !== undefined) q.set('size', String(size));
    q.set('type', mime);
    q.set('exp', String(exp));
    q.set('sig', this.sign(op, key, mime, exp, size));
    return `${base}${FS_MEDIA_PATH}${encodeURIComponent(key)}?${q.toString()}`;
  }

  private sign(op: string, key: string, mime: string, exp: number, size: number | undefined): string {
    return createHmac('sha256', this.hmacKey)
      .update([op, key, size === undefined ? '' : String(size), mime, String(exp)].join('\n'))
      .digest('base64url');
  }

  private validSignature(sig: string, op: string, key: string, mime: string, exp: number, size: number | undefined): boolean {
    const want = Buffer.from(this.sign(op, key, mime, exp, size));
    const got = Buffer.from(sig);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private async receive(req: IncomingMessage, res: ServerResponse, key: string, mime: string, size: number): Promise<void> {
    const sentType = (req.headers['content-type'] ?? '').trim();
    if (sentType.toLowerCase() !== mime.toLowerCase()) {
      drainAndReply(req, res, 403, 'content-type does not match the signed one');
      return;
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > size) {
      drainAndReply(req, res, 413, `more than the ${size} bytes signed`);
      return;
    }
    const final = this.path(key);
    const temp = `${final}.${randomBytes(6).toString('hex')}.part`;
    await mkdir(join(this.opts.dir, key.slice(0, 2)), { recursive: true });
    const file = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
    const hash = createHash('sha256');
    let received = 0;
    let overflow = false;
    const removeTemp = () => unlink(temp).catch(() => {});
    try {
      await new Promise<void>((resolve, reject) => {
        req.on('data', (chunk: Buffer) => {
          if (overflow) return;
          received += chunk.length;
          if (received > size) {
            overflow = true;
            req.pause();
            resolve();
            return;
          }
          hash.update(chunk);
          if (!file.write(chunk)) {
            req.pause();
            file.once('drain', () => req.resume());
          }
        });
        req.once('end', resolve);
        req.once('close', () => {
          if (!req.complete && !overflow) reject(new Error('upload aborted by the client'));
        });
        req.once('error', reject);
        file.once('error', reject);
      });
      await closeStream(file);
      if (overflow) {
        await removeTemp();
        reply(res, 413, `more than the ${size} bytes signed`, { connection: 'close' });
        res.once('finish', () => req.destroy());
        return;
      }
      if (received !== size) {
        await removeTemp();
        reply(res, 400, `expected ${size} bytes, got ${received}`);
        return;
      }
      await fsync(temp);
      await rename(temp, final);
    } catch (err) {
      file.destroy();
      await removeTemp();
      this.opts.log.info({ key, err: String(err) }, 'media upload failed');
      if (!res.headersSent && !req.destroyed) reply(res, 400, 'upload failed');
      else res.destroy();
      return;
    }
    const sha256 = hash.digest('hex');
    let known = true;
    try {
      if (this.onUploaded) known = await this.onUploaded(key, { size, sha256 });
    } catch (err) {
      // The bytes are in place; completion is recorded on first use instead (verify).
      this.opts.log.warn({ key, err: String(err) }, 'could not record a finished upload');
      reply(res, 503, 'stored, but could not be recorded; retry');
      return;
    }
    if (!known) {
      await this.delete(key).catch(() => {});
      reply(res, 404, 'no such upload');
      return;
    }
    res.writeHead(200, { 'content-length': '0', etag: `"${sha256}"` });
    res.end();
  }

  private async serve(res: ServerResponse, key: string, mime: string, head: boolean): Promise<void> {
    const path = this.path(key);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      if (isNotFound(err)) return reply(res, 404, 'no such media');
      throw err;
    }
    res.writeHead(200, {
      'content-type': mime,
      'content-length': String(size),
      'cache-control': 'private, max-age=300',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "sandbox; default-src 'none'",
      'content-disposition': 'inline',
    });
    if (head) {
      res.end();
      return;
    }
    try {
      await pipeline(createReadStream(path), res);
    } catch (err) {
      this.opts.log.debug({ key, err: String(err) }, 'media download interrupted');
      res.destroy();
    }
  }
}

function checkKey(key: string): void {
  if (!KEY_RE.test(key)) throw new TypeError(`media key must be 8-128 of [A-Za-z0-9_-], got "${key}"`);
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

function reply(res: ServerResponse, status: number, msg: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: msg });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

/** Refuse before reading the body: answer, then drop the connection instead of reading what was not wanted. */
function drainAndReply(req: IncomingMessage, res: ServerResponse, status: number, msg: string): void {
  reply(res, status, msg, { connection: 'close' });
  res.once('finish', () => req.destroy());
}

function closeStream(file: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    file.end((err?: Error | null) => (err ? reject(err) : resolve()));
  });
}

async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
