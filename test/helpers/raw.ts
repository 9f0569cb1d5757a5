/** A protocol-level client over a real socket for tests that must send what the SDK never would. */
import WebSocket from 'ws';
import { Packr, Unpackr } from 'msgpackr';
import type { Encoding } from '../../src/protocol/codes.js';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export type Frame = Record<string, unknown> & { t: string };

export class RawClient {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    readonly encoding: Encoding,
  ) {
    ws.on('message', (data: Buffer, isBinary) => {
      const f = (isBinary ? unpackr.unpack(data) : JSON.parse(data.toString())) as Frame;
      this.frames.push(f);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(f)) return true;
        w.resolve(f);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async connect(url: string, encoding: Encoding = 'json', protocols?: string[]): Promise<RawClient> {
    const ws = new WebSocket(url, protocols ?? [encoding === 'json' ? 'sb.v1.json' : 'sb.v1.msgpack']);
    const c = new RawClient(ws, encoding);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  /** Connect and sign in; resolves after `synced`. */
  static async signIn(url: string, token: string, encoding: Encoding = 'json'): Promise<RawClient> {
    const c = await RawClient.connect(url, encoding);
    c.send({ t: 'hello', token });
    await c.next((f) => f.t === 'synced');
    return c;
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(this.encoding === 'json' ? JSON.stringify(frame) : packr.pack(frame));
  }

  sendRaw(data: string | Buffer, binary?: boolean): void {
    this.ws.send(data, { binary: binary ?? typeof data !== 'string' });
  }

  /** The first frame (already received or future) matching `pred`. */
  next(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const have = this.frames.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a frame; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** Send a request frame and wait for its reply (re = id). */
  async request(frame: Record<string, unknown> & { id: string | number }, timeoutMs = 5000): Promise<Frame> {
    this.send(frame);
    return this.next((f) => f.re === frame.id, timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}
