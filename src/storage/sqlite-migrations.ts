/**
 * Schema migrations of the SQLite store. The schema version lives in `PRAGMA user_version`;
 * `migrate` applies, in order, every step above the stored version, each step in its own
 * transaction together with the version bump, so a crash mid-way leaves a consistent schema
 * and reopening applies nothing twice. Steps are append-only: never edit a released one.
 */
import type Database from 'better-sqlite3';

export interface SqliteMigration {
  /** The schema version this step produces; versions run 1, 2, 3… without gaps. */
  version: number;
  description: string;
  up(db: Database.Database): void;
}

export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    description: 'conversations, messages, members, last seen, media',
    up(db) {
      db.exec(`
        -- kind IS NULL: claimed by activate, no commit yet.
        CREATE TABLE conversations (
          conv        TEXT PRIMARY KEY,
          kind        TEXT,
          title       TEXT,
          last_seq    INTEGER NOT NULL DEFAULT 0,
          last_ts     INTEGER NOT NULL DEFAULT 0,
          owner_epoch INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE messages (
          conv       TEXT    NOT NULL,
          seq        INTEGER NOT NULL,
          sender     TEXT    NOT NULL,
          cmid       TEXT    NOT NULL,
          ts         INTEGER NOT NULL,
          kind       TEXT    NOT NULL,
          body       TEXT,
          media_json TEXT,
          reply_seq  INTEGER,
          sys_json   TEXT,
          PRIMARY KEY (conv, seq),
          UNIQUE (conv, sender, cmid)
        ) WITHOUT ROWID;

        CREATE TABLE members (
          conv          TEXT    NOT NULL,
          user          TEXT    NOT NULL,
          role          TEXT    NOT NULL,
          joined_seq    INTEGER NOT NULL,
          delivered_seq INTEGER NOT NULL DEFAULT 0,
          read_seq      INTEGER NOT NULL DEFAULT 0,
          PRIMARY KEY (conv, user)
        ) WITHOUT ROWID;
        CREATE INDEX members_by_user ON members (user);

        CREATE TABLE last_seen (
          user TEXT PRIMARY KEY,
          at   INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE media (
          id           TEXT PRIMARY KEY,
          owner        TEXT    NOT NULL,
          mime         TEXT    NOT NULL,
          size         INTEGER NOT NULL,
          name         TEXT,
          key          TEXT    NOT NULL,
          sha256       TEXT,
          created_at   INTEGER NOT NULL,
          completed_at INTEGER
        ) WITHOUT ROWID;
        CREATE INDEX media_by_created ON media (created_at);

        CREATE TABLE media_refs (
          media TEXT NOT NULL,
          conv  TEXT NOT NULL,
          PRIMARY KEY (media, conv)
        ) WITHOUT ROWID;
      `);
    },
  },
];

/** The schema version this build writes. */
export const SQLITE_SCHEMA_VERSION: number = SQLITE_MIGRATIONS.at(-1)?.version ?? 0;

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Thrown when the database was written by a newer build than this one. */
export class SchemaTooNewError extends Error {
  constructor(
    readonly found: number,
    readonly supported: number,
  ) {
    super(`sqlite schema version ${found} is newer than this build supports (${supported})`);
    this.name = 'SchemaTooNewError';
  }
}

/**
 * Bring the schema up to date. Returns the versions before and after; `from === to` when
 * there was nothing to do. Safe to call on every open and from several processes at once
 * (each step re-reads the version inside its write transaction).
 */
export function migrate(
  db: Database.Database,
  migrations: readonly SqliteMigration[] = SQLITE_MIGRATIONS,
): { from: number; to: number } {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`sqlite migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
  const latest = migrations.length;
  const from = schemaVersion(db);
  if (from > latest) throw new SchemaTooNewError(from, latest);
  for (const step of migrations) {
    if (step.version <= from) continue;
    db.transaction(() => {
      if (schemaVersion(db) >= step.version) return; // another process got here first
      step.up(db);
      db.pragma(`user_version = ${step.version}`);
    }).immediate();
  }
  return { from, to: schemaVersion(db) };
}
