/**
 * Raw `ws` baselines of the memory, group and backlog suites, in their own process (started
 * by bench/extra.ts). `node --import tsx bench/raw-server.ts <mode>`, mode:
 *
 *   idle       answers the first frame of a socket with one small frame ("synced"), then holds it;
 *   broadcast  sends every received frame to every other socket, and back to its sender (its "ack");
 *   burst      on a frame {n, frame}, pushes `frame` n times to that socket, then {t:"synced"}.
 *
 * Prints `{"port":N}` on stdout once it listens on 127.0.0.1; frames are opaque bytes except
 * the burst request (parsed as JSON).
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const mode = process.argv[2] ?? 'idle';
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  path: '/ws',
  perMessageDeflate: false,
  maxPayload: 65536,
  clientTracking: true,
  handleProtocols: (protocols) => protocols.values().next().value ?? false,
});
const SYNCED = Buffer.from(JSON.stringify({ t: 'synced' }));
wss.on('connection', (ws: WebSocket) => {
  ws.on('error', () => ws.terminate());
  if (mode === 'idle') {
    ws.once('message', () => ws.send(SYNCED, { binary: false }));
  } else if (mode === 'broadcast') {
    ws.on('message', (data, isBinary) => {
      for (const c of wss.clients) if (c.readyState === 1) c.send(data as Buffer, { binary: isBinary });
    });
  } else {
    ws.on('message', (data) => {
      const req = JSON.parse((data as Buffer).toString('utf8')) as { n: number; frame: string; binary: boolean };
      const frame = Buffer.from(req.frame, 'base64');
      for (let i = 0; i < req.n; i++) ws.send(frame, { binary: req.binary });
      ws.send(SYNCED, { binary: false });
    });
  }
});
wss.on('listening', () => process.stdout.write(`${JSON.stringify({ port: (wss.address() as AddressInfo).port })}\n`));
process.once('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
