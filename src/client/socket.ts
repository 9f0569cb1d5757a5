/**
 * The WebSocket surface the SDK relies on: the standard browser API, which the `ws` package
 * also implements. The platform's WebSocket is used where there is one; elsewhere (Node 20)
 * `ws` is loaded lazily, so browser bundles never need it.
 */

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export const WS_OPEN = 1;

let cached: Promise<WebSocketCtor> | undefined;

/** The platform WebSocket, else the `ws` package's. */
export function defaultWebSocket(): Promise<WebSocketCtor> {
  const platform = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof platform === 'function') return Promise.resolve(platform as WebSocketCtor);
  cached ??= import('ws').then(
    (mod) => ((mod as { WebSocket?: unknown }).WebSocket ?? (mod as { default?: unknown }).default) as WebSocketCtor,
  );
  return cached;
}

/** Turns a socket's handlers into no-ops (not null: `ws` throws on an 'error' nobody listens to). */
export function detach(ws: WebSocketLike): void {
  const noop = (): void => {};
  ws.onopen = noop;
  ws.onmessage = noop;
  ws.onerror = noop;
  ws.onclose = noop;
}
