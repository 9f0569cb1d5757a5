/**
 * The frames of PROTOCOL.md §3: zod schemas for every client frame (the gateway validates
 * each one) and the types of the server's frames. Shared by the node, the SDK and the tests.
 */
import { z } from 'zod';
import type { ErrorCode } from './codes.js';
import { USER_ID_RE } from './codes.js';

const reqId = z.union([z.string().min(1).max(64), z.number().int().safe()]);
const userId = z.string().regex(USER_ID_RE, 'user id: 1-64 of [A-Za-z0-9_.@-]');
const convId = z.string().min(3).max(200);
const cmid = z.string().min(1).max(64);
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const userList = z.array(userId).min(1).max(1000);

export const mediaRefSchema = z.object({
  id: z.string().min(1).max(128),
  mime: z.string().min(1).max(255),
  size: z.number().int().min(0),
  name: z.string().max(255).optional(),
});

export const clientFrameSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('hello'), id: reqId.optional(), token: z.string().min(1).max(8192), device: z.string().max(128).optional() }),
  z.object({
    t: z.literal('send'),
    id: reqId,
    to: userId.optional(),
    conv: convId.optional(),
    cmid,
    body: z.string().optional(),
    media: mediaRefSchema.optional(),
    reply: z.object({ seq: seq.min(1) }).optional(),
  }),
  z.object({ t: z.literal('recv'), id: reqId.optional(), conv: convId, seq }),
  z.object({ t: z.literal('read'), id: reqId.optional(), conv: convId, seq }),
  z.object({ t: z.literal('typing'), id: reqId.optional(), conv: convId, on: z.boolean() }),
  z.object({ t: z.literal('active'), id: reqId.optional() }),
  z.object({ t: z.literal('presence.sub'), id: reqId, users: userList }),
  z.object({ t: z.literal('presence.unsub'), id: reqId, users: userList }),
  z.object({
    t: z.literal('group.create'),
    id: reqId,
    cmid,
    title: z.string().min(1).max(256),
    members: z.array(userId).max(10_000),
  }),
  z.object({ t: z.literal('group.add'), id: reqId, conv: convId, users: userList }),
  z.object({ t: z.literal('group.remove'), id: reqId, conv: convId, users: userList }),
  z.object({ t: z.literal('group.leave'), id: reqId, conv: convId }),
  z.object({ t: z.literal('group.info'), id: reqId, conv: convId }),
  z.object({ t: z.literal('convs'), id: reqId }),
  z.object({
    t: z.literal('history'),
    id: reqId,
    conv: convId,
    before: seq.optional(),
    limit: z.number().int().min(1).max(100).optional(),
  }),
  z.object({ t: z.literal('sync'), id: reqId, since: z.record(convId, seq).optional() }),
  z.object({ t: z.literal('info'), id: reqId, conv: convId, seq: seq.min(1) }),
  z.object({
    t: z.literal('media.put'),
    id: reqId,
    mime: z.string().min(1).max(255),
    size: z.number().int().min(0),
    name: z.string().max(255).optional(),
  }),
  z.object({ t: z.literal('media.get'), id: reqId, media: z.string().min(1).max(128) }),
  z.object({ t: z.literal('ping'), id: reqId }),
]);

export type ClientFrame = z.infer<typeof clientFrameSchema>;
export type ClientFrameOf<T extends ClientFrame['t']> = Extract<ClientFrame, { t: T }>;
export type ReqId = z.infer<typeof reqId>;
export type MediaRef = z.infer<typeof mediaRefSchema>;
export const CLIENT_FRAME_TYPES: ReadonlySet<string> = new Set(clientFrameSchema.options.map((o) => o.shape.t.value));

export type MsgKind = 'text' | 'media' | 'system';
export type SysOp = 'create' | 'add' | 'remove' | 'leave';
export interface SysEvent {
  op: SysOp;
  by: string;
  users: string[];
  title?: string;
}

/** A stored message as it travels on the wire inside `msg` pushes and `history` pages. */
export interface ChatMessage {
  conv: string;
  seq: number;
  from: string;
  cmid: string;
  ts: number;
  kind: MsgKind;
  body?: string;
  media?: MediaRef;
  reply?: { seq: number };
  sys?: SysEvent;
}

export type Role = 'admin' | 'member';
export type ConvKindName = 'direct' | 'group';

export interface ConvSummary {
  conv: string;
  kind: ConvKindName;
  title?: string;
  lastSeq: number;
  delivered: number;
  read: number;
}

export type ServerFrame =
  | { t: 'welcome'; user: string; node: string; time: number }
  /**
   * `backlog` is internal (user actor → the gateway holding the socket): per conversation the
   * seqs the connection is owed, which the gateway reads from the store at the socket's pace.
   * Never sent to clients.
   */
  | { t: 'synced'; backlog?: Record<string, { from: number; to: number }> }
  | ({ t: 'msg' } & ChatMessage)
  | { t: 'ack'; re: ReqId; conv: string; seq: number; cmid: string; ts: number; dup?: boolean }
  | { t: 'receipt'; conv: string; user: string; kind: 'delivered' | 'read'; seq: number }
  | { t: 'typing'; conv: string; user: string; on: boolean }
  | { t: 'presence'; user: string; online: boolean; lastSeen: number | null }
  | { t: 'pong'; re: ReqId; time: number }
  | { t: 'err'; re?: ReqId; code: ErrorCode; msg: string; retryMs?: number }
  | ({ t: 'ok'; re: ReqId } & Record<string, unknown>);

const msgFrames = new WeakMap<ChatMessage, ServerFrame>();

/** The `msg` push of a message: one frame object per message, so a fan-out encodes it once per encoding. */
export function msgFrame(m: ChatMessage): ServerFrame {
  let f = msgFrames.get(m);
  if (!f) msgFrames.set(m, (f = { t: 'msg', ...m }));
  return f;
}
