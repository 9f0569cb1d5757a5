/**
 * The gateway: the node's HTTP server (`/ws`, `/healthz`, `/metrics`, `/dev/token` in dev
 * mode) and its WebSocket connections. It owns the sockets of this node: frames for them
 * arrive through `push`. One timer pings every socket and drops those that missed a pong,
 * and one timer enforces the hello deadline of every socket that has not signed in yet.
 *
 * Memory per socket is kept close to what `ws` itself needs: the upgrade request is not
 * retained, the socket hands its events straight to its connection (a `WebSocket` subclass
 * with one field: no listener objects per socket), `ws` does not track the sockets a second
 * time (the gateway does), and per-connection state beyond the connection object is made on
 * first use.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
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
import type { MediaService } from './media.js';
import { type Delivery, DeliveryOrder } from './delivery-order.js';
import { msgFrame } from '../protocol/frames.js';
import { partitionOf, userKey } from '../cluster/partition.js';

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
  /** Media sharing (`media.put`, `media.get`); absent: those answer unavailable. */
  media?: MediaService;
}

/**
 * The gateway's sockets: a `ws` WebSocket that hands its events to its connection directly
 * instead of through listeners (which cost each socket an events table, listener arrays and
 * closures). Other events, and all of them before the connection is set, go the usual way.
 */
class GatewaySocket extends WebSocket {
  conn: ClientConnection | null = null;

  override emit(event: string | symbol, a?: unknown, b?: unknown): boolean {
    const conn = this.conn;
    if (conn !== null) {
      switch (event) {
        case 'message':
          conn.onMessage(a as Buffer, b as boolean);
          return true;
        case 'pong':
          conn.alive = true;
          return true;
        case 'error':
          conn.socketError(a as Error);
          return true;
        case 'close':
          conn.closed();
          break;
      }
    }
    return super.emit(event, a, b);
  }
}

export class Gateway {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly conns = new Map<string, ClientConnection>();
  /** Open sockets (and handshakes) per remote address, for SB_MAX_CONNS_PER_IP. */
  private readonly perAddress = new Map<string, number>();
  /** Releases the count in `perAddress` of a socket that closes before it became a connection. */
  private readonly releaseAddress: (this: Duplex) => void;
  /** The origins clients reached this node by, interned (one string each, not one per socket). */
  private readonly origins = new Map<string, string>();
  /** Sockets that have not signed in yet → their hello deadline (insertion order is deadline order). */
  private readonly awaitingHello = new Map<ClientConnection, number>();
  private helloTimer: NodeJS.Timeout | null = null;
  private readonly ctx: GatewayContext;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly bootId = randomBytes(4).toString('hex');
  private nextConn = 0;
  private ready = false;
  private failure: string | null = null;
  private accepting = true;
  private readonly encoded = new WeakMap<ServerFrame, Partial<Record<Encoding, string | Buffer>>>();

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
      media: opts.media ?? null,
      groupId: (creator, cmid) => `g:${createHmac('sha256', groupKey).update(`${creator}\u0000${cmid}`).digest('base64url').slice(0, 22)}`,
      encode: (frame, encoding) => this.encode(frame, encoding),
      forget: (conn) => {
        this.awaitingHello.delete(conn);
        if (this.conns.delete(conn.id)) {
          opts.metrics.connections.dec();
          this.release(conn.address);
        }
      },
      signedIn: (conn) => {
        this.awaitingHello.delete(conn);
      },
    };
    // The socket's remote address is read (and cached by net.Socket) at the upgrade, so it is
    // still there when the socket has closed.
    const gateway = this;
    this.releaseAddress = function (this: Duplex) {
      gateway.release((this as Duplex & { remoteAddress?: string }).remoteAddress ?? '?');
    };
    this.http = createServer((req, res) => void this.onRequest(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      WebSocket: GatewaySocket,
      // `conns` tracks the sockets; `close` closes each.
      clientTracking: false,
      maxPayload: opts.config.maxFrame,
      perMessageDeflate: false,
      handleProtocols: (protocols) => {
        if (protocols.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
        if (protocols.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
        return false;
      },
    });
    this.http.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.heartbeat = setInterval(() => this.pingAll(), opts.config.pingIntervalMs);
    this.heartbeat.unref();
  }

  /**
   * A WebSocket upgrade. Nothing made here may keep `req` (headers and all, about a kilobyte)
   * alive for the life of the socket: the origin is computed first, and the listeners are shared.
   */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws' || !this.accepting) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    const address = req.socket.remoteAddress ?? '?';
    const open = this.perAddress.get(address) ?? 0;
    if (open >= this.opts.config.maxConnsPerIp) {
      this.opts.metrics.closes.inc({ code: 'refused_per_ip' });
      socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // Counted from the upgrade request on, so a flood of handshakes is bounded too; released
    // when the socket closes: by `releaseAddress` during the handshake, then by `forget`.
    this.perAddress.set(address, open + 1);
    socket.on('close', this.releaseAddress);
    const origin = this.intern(clientOrigin(req));
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      socket.removeListener('close', this.releaseAddress);
      this.onSocket(ws as GatewaySocket, origin, address);
    });
  }

  private release(address: string): void {
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(address);
    else this.perAddress.set(address, n);
  }

  private intern(origin: string | undefined): string | undefined {
    if (origin === undefined) return undefined;
    const known = this.origins.get(origin);
    if (known !== undefined) return known;
    if (this.origins.size >= 256) this.origins.clear();
    this.origins.set(origin, origin);
    return origin;
  }

  async listen(): Promise<AddressInfo> {
    const limits = nofileLimits();
    if (limits && limits.soft < 65536) {
      // Node raises its soft limit to the hard one at start by itself, so a low soft limit
      // here is nearly always a low hard limit.
      const how =
        limits.soft < limits.hard
          ? `raise it to the hard limit (ulimit -n ${limits.hard}) before starting`
          : `the hard limit is ${limits.hard} too: raise it (as root: /etc/security/limits.conf or prlimit; systemd: LimitNOFILE=; Docker: --ulimit nofile=N:N)`;
      this.opts.log.warn(
        { nofileSoft: limits.soft, nofileHard: limits.hard },
        `open-file limit (nofile) is ${limits.soft}: each connection takes one, so this node cannot hold ${limits.soft} sockets; ${how}`,
      );
    }
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

  /**
   * Deliver a frame to a socket of this node (dropped if it has closed). Messages pass the
   * connection's delivery order: repeats are dropped and a gap is filled from the store
   * first (while it is, later frames for the socket wait, so nothing overtakes).
   */
  push(conn: string, frame: ServerFrame): void {
    const c = this.conns.get(conn);
    if (!c || !c.user) return;
    // Nothing owed and nothing pushed yet (an idle user with no conversations): no state needed.
    if (c.delivery === null && frame.t === 'synced' && (!frame.backlog || isEmpty(frame.backlog))) {
      const synced: ServerFrame = { t: 'synced' };
      c.send(synced, this.encode(synced, c.encoding));
      return;
    }
    const d = this.delivery(c);
    if (d.busy) (d.waiting ??= []).push(frame);
    else this.deliver(c, d, frame);
  }

  private delivery(c: ClientConnection): Delivery {
    return (c.delivery ??= { order: new DeliveryOrder(c.user!), busy: false, waiting: null });
  }

  private deliver(c: ClientConnection, d: Delivery, frame: ServerFrame): void {
    switch (frame.t) {
      case 'msg': {
        // Its own message, read back by a gap fill before its ack arrived: the ack will say it.
        if (frame.from === c.user && c.sentHere(frame.conv, frame.cmid)) {
          d.order.own(frame.conv, frame.seq);
          return;
        }
        const decision = d.order.decide(frame);
        if (decision.action === 'drop') return;
        if (decision.action === 'fill') {
          this.fill(c, d, [{ conv: frame.conv, from: decision.from, to: decision.to }], frame);
          return;
        }
        c.send(frame, this.encode(frame, c.encoding));
        d.order.pushed(frame);
        return;
      }
      case 'ack':
        d.order.own(frame.conv, frame.seq);
        c.acked(frame.conv, frame.cmid);
        break;
      case 'synced':
        if (frame.backlog) {
          // The backlog: what the connection is owed, read at the socket's pace, then `synced`.
          const ranges: Array<{ conv: string; from: number; to: number }> = [];
          for (const [conv, r] of Object.entries(frame.backlog)) {
            d.order.known(conv, r.from - 1);
            if (r.from <= r.to) ranges.push({ conv, ...r });
          }
          this.fill(c, d, ranges, { t: 'synced' });
          return;
        }
        break;
    }
    c.send(frame, this.encode(frame, c.encoding));
  }

  /**
   * Read missing ranges from the store (membership-checked) and push them at the socket's
   * pace, then `then` and the frames that waited meanwhile.
   */
  private fill(c: ClientConnection, d: Delivery, ranges: Array<{ conv: string; from: number; to: number }>, then?: ServerFrame): void {
    d.busy = true;
    const user = c.user!;
    const bound = this.opts.config.maxQueuedBytes;
    void (async () => {
      for (const r of ranges) {
        try {
          for await (const page of this.opts.queries.range(user, r.conv, r.from, r.to)) {
            if (!c.open) return;
            for (const m of page) {
              this.deliver(c, d, msgFrame(m));
              if (c.queuedBytes > bound / 2) await c.drained(bound / 4);
            }
            // Let the turn end between pages: the corked socket writes what it has (the client
            // starts reading) and other sockets get their turn, instead of one huge write at the end.
            await new Promise((r) => setImmediate(r));
          }
        } catch (err) {
          this.opts.log.warn({ conn: c.id, conv: r.conv, err: String(err) }, 'reading missed messages failed');
        }
      }
      d.busy = false;
      const waiting = d.waiting ?? [];
      d.waiting = null;
      if (then) waiting.unshift(then);
      for (let i = 0; i < waiting.length; i++) {
        if (d.busy) {
          (d.waiting ??= []).unshift(...waiting.slice(i));
          return;
        }
        this.deliver(c, d, waiting[i]!);
      }
    })();
  }

  /** Register the connection with its user's new actor and catch it up on what it may have missed. */
  private resume(c: ClientConnection): void {
    const user = c.user!;
    this.opts.router.toUser({ type: 'attach', user, conn: { node: this.opts.node, conn: c.id }, resume: true }).catch((err) => {
      this.opts.log.warn({ conn: c.id, err: String(err) }, 'resume failed; closing so the client reconnects');
      c.close(CLOSE.goingAway, 'unavailable');
    });
    this.catchUp(c);
  }

  private catchUp(c: ClientConnection): void {
    if (!c.open) return;
    const d = this.delivery(c);
    if (d.busy) {
      setTimeout(() => this.catchUp(c), 20).unref();
      return;
    }
    const ranges = d.order.conversations().map((conv) => ({ conv, from: (d.order.last(conv) ?? 0) + 1, to: Number.MAX_SAFE_INTEGER }));
    this.fill(c, d, ranges);
  }

  /** Stop accepting sockets and close every open one with `code`. */
  /** Each frame object is encoded at most once per encoding, however many sockets it goes to. */
  private encode(frame: ServerFrame, encoding: Encoding): string | Buffer {
    let e = this.encoded.get(frame);
    if (!e) this.encoded.set(frame, (e = {}));
    return (e[encoding] ??= encodeFrame(frame, encoding));
  }

  /** A part the node cannot serve without has failed (e.g. the store's writer): /healthz says so from now on. */
  markFailed(reason: string): void {
    this.failure ??= reason;
  }

  /** New sockets are refused from now on (drain); open ones stay until `close`. */
  stopAccepting(): void {
    this.accepting = false;
    this.ready = false;
  }

  /**
   * Register every signed-in connection whose user partition moved (per `moved`) with the
   * user actor's new owner, and catch each one up from the store.
   */
  reattach(moved: (partition: number) => boolean, partitions: number): void {
    for (const c of this.conns.values()) {
      if (c.user && moved(partitionOf(userKey(c.user), partitions))) this.resume(c);
      // Watched users whose actors moved lost their watchers: subscribe again.
      if (c.user) c.rewatch((u) => moved(partitionOf(userKey(u), partitions)));
    }
  }

  /** Stop accepting sockets and close every open one with `code`. */
  async close(code: number = CLOSE.goingAway): Promise<void> {
    this.accepting = false;
    this.ready = false;
    clearInterval(this.heartbeat);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    for (const c of [...this.conns.values()]) c.close(code, 'node shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private onSocket(ws: GatewaySocket, origin: string | undefined, address: string): void {
    const encoding: Encoding = ws.protocol === SUBPROTOCOL_MSGPACK ? 'msgpack' : 'json';
    const id = `${this.bootId}${(this.nextConn++).toString(36)}`;
    const conn = new ClientConnection(id, ws, encoding, this.ctx, origin, address);
    this.conns.set(id, conn);
    this.opts.metrics.connections.inc();
    // From here on the socket's events go to `conn` (GatewaySocket.emit).
    ws.conn = conn;
    this.awaitingHello.set(conn, Date.now() + this.opts.config.helloTimeoutMs);
    if (this.helloTimer === null) this.armHelloTimer(this.opts.config.helloTimeoutMs);
  }

  private armHelloTimer(ms: number): void {
    this.helloTimer = setTimeout(() => this.expireHellos(), ms);
    this.helloTimer.unref();
  }

  /** Refuse the sockets whose hello deadline passed; re-arm for the next deadline. */
  private expireHellos(): void {
    this.helloTimer = null;
    const now = Date.now();
    for (const [conn, due] of this.awaitingHello) {
      if (due > now) {
        this.armHelloTimer(due - now);
        return;
      }
      this.awaitingHello.delete(conn);
      conn.helloExpired();
    }
  }

  private pingAll(): void {
    for (const c of this.conns.values()) c.heartbeat();
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname === '/healthz') {
        const ok = this.ready && this.failure === null;
        return json(res, ok ? 200 : 503, {
          status: this.failure !== null ? 'failed' : this.ready ? 'ok' : 'starting',
          ...(this.failure !== null ? { failure: this.failure } : {}),
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

/** This process's soft and hard limits on open files (Linux, /proc/self/limits); null where unknown. */
export function nofileLimits(): { soft: number; hard: number } | null {
  try {
    const m = readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\S+)\s+(\S+)/m);
    if (!m) return null;
    const n = (v: string) => (v === 'unlimited' ? Infinity : Number(v));
    const soft = n(m[1]!);
    const hard = n(m[2]!);
    return Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
  } catch {
    return null;
  }
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * The http(s) origin the client reached this node by (its Host header; https when a proxy says
 * so), for URLs served by this node (FS media). Only ever handed back to the same client.
 */
function clientOrigin(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (!host || !/^[A-Za-z0-9.:[\]_-]{1,255}$/.test(host)) return undefined;
  const proto = String(req.headers['x-forwarded-proto'] ?? '').split(',')[0]!.trim();
  return `${proto === 'https' ? 'https' : 'http'}://${host}`;
}
