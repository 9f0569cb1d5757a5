/** The Switchboard client SDK (runs in Node with `ws` and in browsers). */
export { SwitchboardClient } from './client.js';
export { CLOSE_CLIENT_TIMEOUT, type OutgoingFrame } from './session.js';
export { SwitchboardError, RETRYABLE_CODES, type ClientErrorCode } from './errors.js';
export type {
  Ack,
  ClientEvents,
  CloseInfo,
  ConnectionState,
  ConvInfo,
  ErrPush,
  GroupCreated,
  GroupCreateInput,
  GroupInfo,
  MediaGet,
  MediaPut,
  MsgMeta,
  Pong,
  Presence,
  Receipt,
  ReceiptInfo,
  SendInput,
  SwitchboardClientOptions,
  SyncResult,
  TokenSource,
  Typing,
  Welcome,
} from './types.js';
export type { WebSocketCtor, WebSocketLike } from './socket.js';
export type { OutboxItem, OutboxState } from './outbox.js';
export { createCodec, jsonCodec, CodecError, type Codec, type WireFrame } from './codec.js';
export type { ChatMessage, MediaRef, SysEvent } from '../protocol/frames.js';
