/**
 * MediaStore on S3 or an S3-compatible server (AWS SDK v3), chosen by SB_S3_BUCKET.
 *
 * Uploads and downloads go straight between the client and S3 through presigned URLs
 * (SigV4 query signing): the PUT signs `content-type` and `content-length`, so S3 itself
 * refuses another type or another size (403); the GET overrides the response content type
 * with the upload's `mime`. S3 does not tell the node when an upload finishes, so
 * completion is verified on first use (the first `send` carrying the media, or `media.get`):
 * `verify` reads the object once, checks its size and records its SHA-256.
 *
 * The SDK's default request checksums are off (`WHEN_REQUIRED`): with them on, a presigned
 * PUT would carry the checksum of an empty body and S3 would refuse the real one.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { DownloadTicket, Log, MediaStore, StoredObject, UploadTicket } from '../actors/ports/index.js';
import { StoreUnavailableError } from '../actors/ports/index.js';

export interface S3MediaStoreOptions {
  endpoint: string | null;
  region: string;
  bucket: string;
  accessKey: string | null;
  secretKey: string | null;
  forcePathStyle: boolean;
  log: Log;
  /** Key prefix inside the bucket; default "media/". */
  prefix?: string;
  now?: () => number;
}

/** Why the bucket cannot be used, naming the setting to fix. */
export class S3SetupError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = 'S3SetupError';
  }
}

export class S3MediaStore implements MediaStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;
  private readonly prefix: string;
  private readonly now: () => number;

  constructor(private readonly opts: S3MediaStoreOptions) {
    const config: S3ClientConfig = {
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    };
    if (opts.endpoint) config.endpoint = opts.endpoint;
    if (opts.accessKey && opts.secretKey) config.credentials = { accessKeyId: opts.accessKey, secretAccessKey: opts.secretKey };
    this.client = new S3Client(config);
    this.prefix = opts.prefix ?? 'media/';
    this.now = opts.now ?? Date.now;
  }

  /**
   * Check at start that the bucket exists and the credentials may use it. A missing bucket or
   * refused credentials reject with S3SetupError; an unreachable server only logs (the node
   * serves chat without media until it is back).
   */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
    } catch (err) {
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 404) throw new S3SetupError('SB_S3_BUCKET', `bucket "${this.opts.bucket}" does not exist`);
      if (status === 403 || status === 401) {
        throw new S3SetupError('SB_S3_ACCESS_KEY', `access to bucket "${this.opts.bucket}" refused (check SB_S3_ACCESS_KEY, SB_S3_SECRET_KEY)`);
      }
      if (status === 301 || status === 400) throw new S3SetupError('SB_S3_REGION', `bucket "${this.opts.bucket}" is not in region ${this.opts.region}`);
      this.opts.log.warn({ bucket: this.opts.bucket, err: String(err) }, 'S3 media store not reachable at start');
    }
  }

  async presignPut(key: string, mime: string, size: number, expires: number): Promise<UploadTicket> {
    const { signingDate, expiresIn, until } = this.window(expires);
    const url = await this.sign(
      new PutObjectCommand({ Bucket: this.opts.bucket, Key: this.objectKey(key), ContentType: mime, ContentLength: size }),
      { signingDate, expiresIn, signableHeaders: new Set(['content-type', 'content-length']) },
    );
    return { url, method: 'PUT', headers: { 'content-type': mime }, expires: until };
  }

  async presignGet(key: string, mime: string, expires: number): Promise<DownloadTicket> {
    const { signingDate, expiresIn, until } = this.window(expires);
    const url = await this.sign(
      new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.objectKey(key), ResponseContentType: mime }),
      { signingDate, expiresIn },
    );
    return { url, expires: until };
  }

  async verify(key: string, expectedSize: number): Promise<StoredObject | null> {
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      if (isMissing(err)) return null;
      throw unavailable(err);
    }
    const body = res.Body as Readable | undefined;
    const size = res.ContentLength ?? -1;
    if (!body || size !== expectedSize) {
      body?.destroy();
      return { size };
    }
    const hash = createHash('sha256');
    let read = 0;
    try {
      for await (const chunk of body) {
        read += (chunk as Buffer).length;
        if (read > expectedSize) {
          body.destroy();
          return { size: read };
        }
        hash.update(chunk as Buffer);
      }
    } catch (err) {
      throw unavailable(err);
    }
    return read === expectedSize ? { size, sha256: hash.digest('hex') } : { size: read };
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      if (!isMissing(err)) throw unavailable(err);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    return `${this.prefix}${key}`;
  }

  /** SigV4 counts expiry in whole seconds from a whole-second signing time. */
  private window(expires: number): { signingDate: Date; expiresIn: number; until: number } {
    const start = Math.floor(this.now() / 1000) * 1000;
    const expiresIn = Math.min(604_800, Math.max(1, Math.round((expires - start) / 1000)));
    return { signingDate: new Date(start), expiresIn, until: start + expiresIn * 1000 };
  }

  private async sign(
    cmd: PutObjectCommand | GetObjectCommand,
    options: { signingDate: Date; expiresIn: number; signableHeaders?: Set<string> },
  ): Promise<string> {
    try {
      return await getSignedUrl(this.client, cmd, options);
    } catch (err) {
      throw unavailable(err);
    }
  }
}

function isMissing(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404;
}

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`S3 media store: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
