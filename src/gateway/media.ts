/**
 * Media sharing (PROTOCOL.md §4.9): `media.put` and `media.get` for the gateway, completion
 * of uploads, and the sweeper of uploads that no message references.
 *
 * Only metadata goes into the chat store (`MediaRecord`: owner, mime, size, name, key,
 * SHA-256, times) and, from the conversation actor after a commit, which conversations
 * reference an upload; bytes stay in the MediaStore.
 *
 * - `put`: size over SB_MAX_MEDIA → too_large; records the upload (not complete) and returns
 *   a signed, expiring upload URL for exactly `size` bytes of `mime`.
 * - Completion: the FS store reports it at the end of its PUT (`uploaded`); for S3 it is
 *   verified on first use (`complete`: the conversation actor calls it for a `send` whose
 *   media is not yet known complete, `get` calls it too).
 * - `get`: allowed for the uploader and for current members of a conversation that has a
 *   message carrying the media; anything else (unknown id, not allowed, not uploaded) is
 *   not_found, so ids cannot be probed.
 * - The sweeper deletes, every quarter of SB_MEDIA_ORPHAN_MS (at most every 10 minutes),
 *   uploads older than SB_MEDIA_ORPHAN_MS that no conversation references: the record
 *   first (so no new send can use it), then the bytes.
 */
import { randomBytes } from 'node:crypto';
import type { Log, MediaRecord, MediaStore, Store, StoredObject } from '../actors/ports/index.js';
import { RequestError, StoreUnavailableError, SwitchboardError } from '../actors/ports/index.js';

export interface MediaServiceOptions {
  store: Store;
  media: MediaStore;
  log: Log;
  /** SB_MAX_MEDIA */
  maxSize: number;
  /** SB_MEDIA_URL_TTL_MS */
  urlTtlMs: number;
  /** SB_MEDIA_ORPHAN_MS */
  orphanMs: number;
  now?: () => number;
}

export interface MediaPutResult {
  media: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  expires: number;
}

/** `type/subtype` with optional parameters; never a CR or LF (it becomes a header). */
const MIME_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\r\n\\]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;
const SWEEP_PAGE = 100;
const SWEEP_PAGES = 20;

export class MediaService {
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping: Promise<number> | null = null;

  constructor(private readonly opts: MediaServiceOptions) {
    this.now = opts.now ?? Date.now;
  }

  async put(user: string, input: { mime: string; size: number; name?: string }, origin?: string): Promise<MediaPutResult> {
    if (input.size > this.opts.maxSize) throw new RequestError('too_large', `media over ${this.opts.maxSize} bytes`);
    if (!MIME_RE.test(input.mime)) throw new RequestError('bad_request', 'mime: not a media type (type/subtype)');
    const id = randomBytes(16).toString('base64url');
    const now = this.now();
    const rec: MediaRecord = { id, owner: user, mime: input.mime, size: input.size, key: id, createdAt: now };
    if (input.name !== undefined) rec.name = input.name;
    return this.guard(async () => {
      await this.opts.store.putMedia(rec);
      const t = await this.opts.media.presignPut(rec.key, rec.mime, rec.size, now + this.opts.urlTtlMs, origin === undefined ? {} : { origin });
      return { media: id, url: t.url, method: t.method, headers: t.headers, expires: t.expires };
    });
  }

  async get(user: string, id: string, origin?: string): Promise<{ url: string; expires: number }> {
    return this.guard(async () => {
      let rec = await this.opts.store.media(id);
      if (!rec || !(await this.allowed(user, rec))) throw notFound();
      if (rec.completedAt === undefined) rec = await this.complete(rec);
      if (rec.completedAt === undefined) throw notFound();
      const t = await this.opts.media.presignGet(rec.key, rec.mime, this.now() + this.opts.urlTtlMs, origin === undefined ? {} : { origin });
      return { url: t.url, expires: t.expires };
    });
  }

  /**
   * Verify an upload the store does not know as complete and record its completion (size
   * and SHA-256). Returns the record as it is now (still without `completedAt` when the
   * bytes are missing or of another size).
   */
  async complete(rec: MediaRecord): Promise<MediaRecord> {
    if (rec.completedAt !== undefined) return rec;
    const obj = await this.opts.media.verify(rec.key, rec.size);
    if (!obj || obj.size !== rec.size || obj.sha256 === undefined) return rec;
    const at = this.now();
    await this.opts.store.completeMedia(rec.id, obj.sha256, obj.size, at);
    return { ...rec, sha256: obj.sha256, completedAt: at };
  }

  /** The FS store's hook at the end of a PUT: record completion if the upload is expected. */
  readonly uploaded = async (key: string, obj: Required<StoredObject>): Promise<boolean> => {
    const rec = await this.opts.store.media(key);
    if (!rec || rec.key !== key || rec.size !== obj.size) return false;
    await this.opts.store.completeMedia(rec.id, obj.sha256, obj.size, this.now());
    return true;
  };

  startSweeper(): void {
    if (this.sweeper) return;
    const every = Math.max(50, Math.min(600_000, Math.floor(this.opts.orphanMs / 4)));
    this.sweeper = setInterval(() => void this.sweep(), every);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    await this.sweeping?.catch(() => 0);
  }

  /** Delete unreferenced uploads older than the orphan age; returns how many were deleted. */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<number> {
    let deleted = 0;
    try {
      for (let page = 0; page < SWEEP_PAGES; page++) {
        const old = await this.opts.store.unreferencedMedia(this.now() - this.opts.orphanMs, SWEEP_PAGE);
        for (const rec of old) {
          if ((await this.opts.store.mediaRefs(rec.id)).length > 0) continue;
          await this.opts.store.deleteMedia(rec.id);
          await this.opts.media.delete(rec.key).catch((err: unknown) => {
            this.opts.log.warn({ media: rec.id, err: String(err) }, 'orphaned media bytes not deleted');
          });
          deleted++;
        }
        if (old.length < SWEEP_PAGE) break;
      }
    } catch (err) {
      this.opts.log.warn({ err: String(err) }, 'media sweep failed; will retry');
    }
    if (deleted > 0) this.opts.log.info({ deleted }, 'unreferenced media deleted');
    return deleted;
  }

  private async allowed(user: string, rec: MediaRecord): Promise<boolean> {
    if (rec.owner === user) return true;
    for (const conv of await this.opts.store.mediaRefs(rec.id)) {
      if (await this.opts.store.member(conv, user)) return true;
    }
    return false;
  }

  /** Client-facing refusals pass; any other failure (store or media backend) is `unavailable`. */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      this.opts.log.warn({ err: String(err) }, 'media request failed');
      throw new StoreUnavailableError('media store unavailable', { cause: err });
    }
  }
}

function notFound(): RequestError {
  return new RequestError('not_found', 'no such media');
}
