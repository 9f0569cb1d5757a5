/**
 * The gateway: the node's HTTP server (`/ws`, `/healthz`, `/metrics`, `/dev/token` in dev
 * mode) and its WebSocket connections. It owns the sockets of this node: frames for them
 * arrive through `push`. One timer pings every socket and drops those that missed a pong.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { CLOSE, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, USER_ID_RE, type Encoding } from '../protocol/codes.js';
import type { ServerFrame } from '../protocol/frames.js';
import type { Config } from '../config.js';
import type { Log, StoreInfo } from '../actors/ports/index.js';
import type { Metrics } from '../metrics.js';
import type { Auth } from './auth.js';
import type { Queries } from './queries.js';
import type { GatewayContext } from './context.js';
import { ClientConnection } from './connection.js';
import { encodeFrame } from './codec.js';

export interface GatewayOptions {
  config: Config;
  node: string;
  log: Log;
  auth: Auth;
  queries: Queries;
  metrics: Metrics;
  router: GatewayContext['router'];
  storeInfo(): StoreInfo;
  /** Extra HTTP routes (e.g. media); return true when handled. */
  routes?: Array<(req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>>;
}

export class Gateway {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly conns = new Map<string, ClientConnection>();
  private readonly ctx: GatewayContext;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly bootId = randomBytes(4).toString('hex');
  private nextConn = 0;
  private ready = false;
  private accepting = true;
  /** Encodings of the frame most recently pushed, reused when it goes to several sockets. */
  private lastFrame: ServerFrame | null = null;
  private lastEncoded: Partial<Record<Encoding, string | Buffer>> = {};

  constructor(private readonly opts: GatewayOptions) {
    const groupKey = createHmac('sha256', opts.config.jwtSecret).update('group-ids').digest();
    this.ctx = {
      node: opts.node,
      config: opts.config,
      log: opts.log,
      auth: opts.auth,
      router: opts.router,
      queries: opts.queries,
      metrics: opts.metrics,
      groupId: (creator, cmid) => `g:${createHmac('sha256', groupKey).update(`${creator}\u0000${cmid}`).digest('base64url').slice(0, 22)}`,
      encode: (frame, encoding) => this.encode(frame, encoding),
      forget: (conn) => {
        if (this.conns.delete(conn.id)) opts.metrics.connections.dec();
      },
    };
    this.http = createServer((req, res) => void this.onRequest(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.config.maxFrame,
      perMessageDeflate: false,
      handleProtocols: (protocols) => {
        if (protocols.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
        if (protocols.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
        return false;
      },
    });
    this.http.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/ws' || !this.accepting) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
    this.heartbeat = setInterval(() => this.pingAll(), opts.config.pingIntervalMs);
    this.heartbeat.unref();
  }

  async listen(): Promise<AddressInfo> {
    const { port, host } = this.opts.config;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    return this.http.address() as AddressInfo;
  }

  /** /healthz answers 200 from now on. */
  markReady(): void {
    this.ready = true;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Deliver a frame to a socket of this node (dropped if it has closed). */
  push(conn: string, frame: ServerFrame): void {
    const c = this.conns.get(conn);
    if (c) c.send(frame, this.encode(frame, c.encoding));
  }

  private encode(frame: ServerFrame, encoding: Encoding): string | Buffer {
    if (frame !== this.lastFrame) {
      this.lastFrame = frame;
      this.lastEncoded = {};
    }
    return (this.lastEncoded[encoding] ??= encodeFrame(frame, encoding));
  }

  /** Stop accepting sockets and close every open one with `code`. */
  async close(code: number = CLOSE.goingAway): Promise<void> {
    this.accepting = false;
    this.ready = false;
    clearInterval(this.heartbeat);
    for (const c of [...this.conns.values()]) c.close(code, 'node shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private onSocket(ws: WebSocket): void {
    const encoding: Encoding = ws.protocol === SUBPROTOCOL_MSGPACK ? 'msgpack' : 'json';
    const id = `${this.bootId}${(this.nextConn++).toString(36)}`;
    const conn = new ClientConnection(id, ws, encoding, this.ctx);
    this.conns.set(id, conn);
    this.opts.metrics.connections.inc();
    ws.on('message', (data: Buffer, isBinary) => conn.onMessage(data, isBinary));
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('close', () => conn.closed());
    ws.on('error', (err) => {
      this.opts.log.debug({ conn: id, err: String(err) }, 'socket error');
      conn.closed();
    });
  }

  private pingAll(): void {
    for (const c of this.conns.values()) c.heartbeat();
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname === '/healthz') {
        return json(res, this.ready ? 200 : 503, {
          status: this.ready ? 'ok' : 'starting',
          node: this.opts.node,
          store: this.opts.storeInfo(),
          connections: this.conns.size,
        });
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const body = await this.opts.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': this.opts.metrics.registry.contentType });
        res.end(body);
        return;
      }
      if (this.opts.config.dev && req.method === 'GET' && url.pathname === '/dev/token') {
        const user = url.searchParams.get('user') ?? '';
        if (!USER_ID_RE.test(user)) return json(res, 400, { error: 'user: 1-64 of [A-Za-z0-9_.@-]' });
        return json(res, 200, { token: await this.opts.auth.sign(user, 24 * 3600) });
      }
      for (const route of this.opts.routes ?? []) if (await route(req, res, url)) return;
      json(res, 404, { error: 'not found' });
    } catch (err) {
      this.opts.log.error({ err: String(err), path: url.pathname }, 'http request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal' });
      else res.destroy();
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
