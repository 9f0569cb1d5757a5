/**
 * The baseline: a raw `ws` echo server (every frame goes back as is, text or binary), run in
 * its own process by bench/run.ts. Prints `{"port":N}` on stdout once it listens on 127.0.0.1.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? '0');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  perMessageDeflate: false,
  maxPayload: 65536,
  handleProtocols: (protocols) => protocols.values().next().value ?? false,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
wss.on('listening', () => process.stdout.write(`${JSON.stringify({ port: (wss.address() as AddressInfo).port })}\n`));
process.once('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
