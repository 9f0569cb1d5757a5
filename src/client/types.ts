/** The SDK's public types: options, events and request results. */
import type { Encoding } from '../protocol/codes.js';
import type { ChatMessage, ConvSummary, MediaRef, Role, ServerFrame } from '../protocol/frames.js';
import type { WebSocketCtor } from './socket.js';

export type TokenSource = string | (() => Promise<string> | string);

export interface SwitchboardClientOptions {
  /** e.g. ws://localhost:8080/ws */
  url: string | string[];
  /** A JWT, or a provider called for the first connection and again (once) after a 4001 close. */
  token: TokenSource;
  /** Default 'json'. */
  encoding?: Encoding;
  /** Default: globalThis.WebSocket, else the `ws` package. */
  WebSocket?: WebSocketCtor;
  /** Reconnect backoff (default 250 ms .. 10 s), or false to stay closed after a drop. */
  reconnect?: { minMs?: number; maxMs?: number } | false;
  /** Backoff of send/group.create retries without retryMs (default 100 ms .. 5 s). */
  retry?: { minMs?: number; maxMs?: number };
  /** Reply deadline per request, and for the welcome after dialling; default 10 s. */
  requestTimeoutMs?: number;
  /** Sent in hello. */
  device?: string;
  /** Send `recv {conv, seq}` for every new message from someone else. Default false. */
  autoRecv?: boolean;
  /** Dedup memory per conversation above its contiguous floor; default 512 seqs. */
  dedupWindow?: number;
  /** How many seqs per conversation `received(conv)` remembers; default 10000 (0: none). */
  receivedLimit?: number;
  /** Frames larger than this are refused locally (the node closes 1009 on them); default 65536. */
  maxFrameBytes?: number;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

type Payload<T extends ServerFrame['t']> = Omit<Extract<ServerFrame, { t: T }>, 't'>;

export type Welcome = Payload<'welcome'>;
export type Ack = Omit<Payload<'ack'>, 're'>;
export type Receipt = Payload<'receipt'>;
export type Typing = Payload<'typing'>;
export type Presence = Payload<'presence'>;
/** A pushed `err` that answered no pending request. */
export type ErrPush = Payload<'err'>;

export interface MsgMeta {
  /** Delivered in answer to this client's `sync()` (emitted even when seen before). */
  sync: boolean;
  /** This (conv, seq) was seen before (only ever true with sync). */
  dup: boolean;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** Whether the client will reconnect. */
  reconnect: boolean;
}

export interface ClientEvents {
  welcome: [Welcome];
  msg: [ChatMessage, MsgMeta];
  receipt: [Receipt];
  typing: [Typing];
  presence: [Presence];
  synced: [];
  err: [ErrPush];
  state: [ConnectionState];
  close: [CloseInfo];
  /** Every frame as it arrived, before dedup, with the number of the socket it came on (diagnostics, tests). */
  frame: [Record<string, unknown> & { t: string }, { socket: number }];
  /** Local trouble: socket errors, undecodable frames, a failing token provider. */
  error: [Error];
}

export interface SendInput {
  to?: string;
  conv?: string;
  body?: string;
  media?: MediaRef;
  reply?: { seq: number };
  cmid?: string;
}

export interface GroupCreateInput {
  title: string;
  members: string[];
  cmid?: string;
}

export interface GroupCreated {
  conv: string;
  seq: number;
  cmid: string;
}

export interface GroupInfo {
  conv: string;
  title: string;
  members: { user: string; role: Role }[];
  lastSeq: number;
}

/** One entry of `convs()`. */
export type ConvInfo = ConvSummary;

export interface SyncResult {
  /** The msg pushes that arrived between the sync and its ok, in arrival order. */
  msgs: ChatMessage[];
  /** conv → lastSeq */
  convs: Record<string, number>;
}

export interface ReceiptInfo {
  delivered: string[];
  read: string[];
}

export interface MediaPut {
  media: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  expires: number;
}

export interface MediaGet {
  url: string;
  expires: number;
}

export interface Pong {
  time: number;
  rttMs: number;
}
