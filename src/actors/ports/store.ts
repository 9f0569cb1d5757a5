/**
 * The Store port: everything the core keeps durably. The core owns this interface; each
 * backend (`SqliteStore`, later `CqlStore`) implements it and passes the same contract
 * suite (test/contract/store.contract.ts).
 *
 * Rules every implementation keeps:
 * - `commit` is all-or-nothing: messages, their dedup keys, title and membership changes.
 * - Single writer: `activate` claims a conversation at an ownership epoch; a `commit` whose
 *   epoch is not the claimed one, or whose `expectedLastSeq` is not the stored head, is
 *   refused with `StoreConflictError` and writes nothing (no overwrite, no skipped seq).
 * - Dedup: (conv, from, cmid) is unique. A commit that carries a message whose key is
 *   already stored is refused with `DuplicateMessageError` listing the stored seqs, and
 *   writes nothing. `findDuplicate` answers for at least 7 days.
 * - Watermarks only rise (`saveWatermarks` keeps the max of stored and given).
 * - A call that could not reach the backend rejects with `StoreUnavailableError`; the
 *   outcome of such a commit is unknown and the writer must `activate` again.
 */
import type { ChatMessage, ConvKindName, ConvSummary, Role } from '../../protocol/frames.js';

export interface MemberRecord {
  user: string;
  role: Role;
  /** Seq of the message at which the user (last) joined; it receives messages from here on. */
  joinedSeq: number;
  delivered: number;
  read: number;
}

export interface ConversationRecord {
  conv: string;
  kind: ConvKindName;
  title?: string;
  lastSeq: number;
  members: MemberRecord[];
}

export type MemberChange =
  | { op: 'upsert'; member: MemberRecord }
  | { op: 'remove'; user: string };

export interface CommitRequest {
  conv: string;
  /** The writer's ownership epoch, as claimed by `activate`. */
  epoch: number;
  /** The head the writer believes is stored; 0 for a conversation that does not exist yet. */
  expectedLastSeq: number;
  /** Contiguous seqs from expectedLastSeq + 1; may be empty only with membership changes. */
  messages: ChatMessage[];
  /** Set on the first commit of a conversation (required then). */
  kind?: ConvKindName;
  title?: string;
  members?: MemberChange[];
}

export interface WatermarkUpdate {
  user: string;
  delivered: number;
  read: number;
}

export interface MediaRecord {
  id: string;
  owner: string;
  mime: string;
  size: number;
  name?: string;
  /** Where the bytes live in the media store (a path or an object key). */
  key: string;
  sha256?: string;
  createdAt: number;
  /** Set once the upload has completed. */
  completedAt?: number;
}

export interface StoreInfo {
  kind: 'sqlite' | 'cql';
  /** The durability setting in force: SQLite's synchronous mode or the CQL write consistency. */
  sync: string;
}

export interface Store {
  info(): StoreInfo;

  /**
   * Claim the conversation for a writer at `epoch` and return its state (null if it has no
   * committed message yet). Rejects with StoreConflictError('stale_epoch') when a higher
   * epoch has claimed it. Claiming again at the same epoch is allowed (reload) — by the same
   * writer: an epoch belongs to one live writer (the cluster hands out each partition epoch
   * once, by compare-and-set); no store can fence two live writers holding the same epoch.
   */
  activate(conv: string, epoch: number): Promise<ConversationRecord | null>;

  commit(req: CommitRequest): Promise<void>;

  /** The seq stored for (conv, from, cmid), or null. */
  findDuplicate(conv: string, from: string, cmid: string): Promise<number | null>;

  saveWatermarks(conv: string, updates: WatermarkUpdate[]): Promise<void>;

  /** Messages with fromSeq <= seq <= toSeq, ascending, at most `limit`. */
  messages(conv: string, fromSeq: number, toSeq: number, limit: number): Promise<ChatMessage[]>;

  /** The newest `limit` messages with minSeq <= seq < before, returned ascending. */
  messagesBefore(conv: string, before: number, limit: number, minSeq: number): Promise<ChatMessage[]>;

  member(conv: string, user: string): Promise<MemberRecord | null>;

  /** The user's current conversations with their head and the user's watermarks. */
  userConversations(user: string): Promise<ConvSummary[]>;

  /**
   * The users of `candidates` that are, now, members of at least one conversation that
   * `user` is a member of (each listed once, any order). `user` itself is included when it is
   * a candidate and a member of any conversation. Used to allow `presence.sub`.
   */
  coMembers(user: string, candidates: string[]): Promise<string[]>;

  /** Last seen (ms since epoch) per user; users never seen are absent from the map. */
  saveLastSeen(entries: Array<{ user: string; at: number }>): Promise<void>;
  lastSeen(users: string[]): Promise<Map<string, number>>;

  /** Media metadata only: bytes never enter the chat store. */
  putMedia(rec: MediaRecord): Promise<void>;
  completeMedia(id: string, sha256: string, size: number, at: number): Promise<void>;
  media(id: string): Promise<MediaRecord | null>;
  addMediaRef(media: string, conv: string): Promise<void>;
  mediaRefs(media: string): Promise<string[]>;
  /** Uploads created before `before` that no conversation references. */
  unreferencedMedia(before: number, limit: number): Promise<MediaRecord[]>;
  deleteMedia(id: string): Promise<void>;

  close(): Promise<void>;
}
