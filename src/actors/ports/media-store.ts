/**
 * The MediaStore port: where media bytes live (never in the chat store). The core owns this
 * interface; `FsMediaStore` (files under SB_DATA_DIR/media, served by the node's HTTP server)
 * and `S3MediaStore` (S3 or an S3-compatible server) implement it and pass the same contract
 * suite (test/contract/media.contract.ts).
 *
 * Clients move bytes directly with the store through signed, expiring URLs: the node never
 * proxies them (except that the FS store's URLs point at the node itself). A URL signs the
 * object key, the method, the expiry and, for uploads, the exact size and content type; a
 * wrong or expired signature gets HTTP 403.
 */

export interface UploadTicket {
  url: string;
  method: 'PUT';
  /** Headers the client must send with the bytes (their values are signed). */
  headers: Record<string, string>;
  /** ms since the epoch. */
  expires: number;
}

export interface DownloadTicket {
  url: string;
  expires: number;
}

/** What is stored under a key. */
export interface StoredObject {
  size: number;
  /** Hex SHA-256 of the bytes; absent when `size` differs from the expected one (not hashed). */
  sha256?: string;
}

export interface PresignOptions {
  /** The http(s) origin the client reached this node by; stores that serve through the node use it. */
  origin?: string;
}

export interface MediaStore {
  readonly kind: 'fs' | 's3';
  /** A URL to upload exactly `size` bytes of `mime` under `key`, valid until `expires`. */
  presignPut(key: string, mime: string, size: number, expires: number, opts?: PresignOptions): Promise<UploadTicket>;
  /** A URL serving the bytes under `key` with content type `mime`, valid until `expires`. */
  presignGet(key: string, mime: string, expires: number, opts?: PresignOptions): Promise<DownloadTicket>;
  /**
   * What is stored under `key`, or null when nothing is. Hashes the bytes (reads them once)
   * only when their size is `expectedSize`.
   */
  verify(key: string, expectedSize: number): Promise<StoredObject | null>;
  /** Remove the bytes under `key` (no error when there are none). */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Called by a store that learns itself when an upload has finished (the FS store, at the end
 * of its PUT): records completion; resolves false when no such upload is expected.
 */
export type UploadedHook = (key: string, obj: Required<StoredObject>) => Promise<boolean>;
