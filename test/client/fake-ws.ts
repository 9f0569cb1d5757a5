/**
 * A scripted stand-in for the platform WebSocket, for client tests without a node: the test
 * plays the server (accept, push frames, close) and reads what the client wrote.
 */
import { createCodec, type Codec, type WireFrame } from '../../src/client/codec.js';
import type { WebSocketCtor, WebSocketLike } from '../../src/client/socket.js';
import type { Encoding } from '../../src/protocol/codes.js';

type Waiter = { pred: (f: WireFrame) => boolean; resolve: (f: WireFrame) => void };

export class FakeSocket implements WebSocketLike {
  binaryType = 'blob';
  readyState = 0;
  protocol = '';
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  /** Every frame the client wrote, decoded. */
  readonly frames: WireFrame[] = [];
  /** Raw payload types the client wrote ('string' or 'binary'). */
  readonly kinds: string[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  private readonly taken = new Set<WireFrame>();
  private waiters: Waiter[] = [];

  constructor(
    readonly url: string,
    readonly protocols: string[],
    private readonly codec: Codec,
  ) {}

  // -- the client's side (standard API) --
  send(data: string | ArrayBufferLike | ArrayBufferView): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.kinds.push(typeof data === 'string' ? 'string' : 'binary');
    const f = this.codec.decode(data as string | ArrayBufferView);
    this.frames.push(f);
    const w = this.waiters.find((x) => x.pred(f));
    if (w) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      this.taken.add(f);
      w.resolve(f);
    }
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.closedWith = { ...(code !== undefined ? { code } : {}), ...(reason !== undefined ? { reason } : {}) };
    this.readyState = 2;
    setTimeout(() => {
      this.readyState = 3;
      this.onclose?.({ code: code ?? 1005, reason: reason ?? '' });
    }, 0);
  }

  // -- the test's side (the server) --
  accept(protocol = this.protocols[0] ?? ''): void {
    this.readyState = 1;
    this.protocol = protocol;
    this.onopen?.({});
  }

  push(frame: object): void {
    const wire = this.codec.encode(frame);
    // What binaryType='arraybuffer' hands over: an exact ArrayBuffer.
    const data = typeof wire === 'string' ? wire : Uint8Array.from(wire).buffer;
    this.onmessage?.({ data });
  }

  pushRaw(data: unknown): void {
    this.onmessage?.({ data });
  }

  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The first frame not yet taken by next() of type t / matching pred (waits for it). */
  next(t?: string, pred: (f: WireFrame) => boolean = () => true, timeoutMs = 2_000): Promise<WireFrame> {
    const match = (f: WireFrame): boolean => (t === undefined || f.t === t) && pred(f);
    const have = this.frames.find((f) => !this.taken.has(f) && match(f));
    if (have) {
      this.taken.add(have);
      return Promise.resolve(have);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no client frame ${t ?? ''} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        pred: match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  framesOf(t: string): WireFrame[] {
    return this.frames.filter((f) => f.t === t);
  }

  /** accept + wait for hello + welcome. */
  async handshake(user = 'alice'): Promise<WireFrame> {
    this.accept();
    const hello = await this.next('hello');
    this.push({ t: 'welcome', user, node: 'n1', time: 1_000 });
    return hello;
  }
}

export class FakeNet {
  readonly sockets: FakeSocket[] = [];
  readonly Ctor: WebSocketCtor;
  private claimed = 0;
  private waiters: ((s: FakeSocket) => void)[] = [];

  constructor(readonly encoding: Encoding = 'json') {
    const codec = createCodec(encoding);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const net = this;
    this.Ctor = class extends FakeSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols === undefined ? [] : Array.isArray(protocols) ? protocols : [protocols], codec);
        net.sockets.push(this);
        const w = net.waiters.shift();
        if (w) {
          net.claimed++;
          w(this);
        }
      }
    } as unknown as WebSocketCtor;
  }

  /** The next socket the client opens. */
  next(timeoutMs = 2_000): Promise<FakeSocket> {
    if (this.claimed < this.sockets.length) return Promise.resolve(this.sockets[this.claimed++] as FakeSocket);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no new socket within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
