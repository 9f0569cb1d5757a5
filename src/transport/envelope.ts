/** The msgpack envelope of everything that crosses nodes: actor commands and socket pushes. */
import { Packr, Unpackr } from 'msgpackr';
import type { ActorEnvelope, NodePush } from './bus.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export const ENVELOPE_VERSION = 1;

export function packEnvelope(env: ActorEnvelope): Uint8Array {
  return packr.pack({ v: ENVELOPE_VERSION, k: env.kind, key: env.key, cmd: env.cmd });
}

export function unpackEnvelope(data: Uint8Array): ActorEnvelope {
  const o = unpackr.unpack(data) as { v?: unknown; k?: unknown; key?: unknown; cmd?: unknown };
  if (o.v !== ENVELOPE_VERSION || (o.k !== 'conv' && o.k !== 'user') || typeof o.key !== 'string' || typeof o.cmd !== 'object' || o.cmd === null) {
    throw new Error('not a Switchboard envelope');
  }
  return { kind: o.k, key: o.key, cmd: o.cmd } as ActorEnvelope;
}

export function packPush(push: NodePush): Uint8Array {
  return packr.pack(push);
}

export function unpackPush(data: Uint8Array): NodePush {
  const o = unpackr.unpack(data) as NodePush;
  if (typeof o?.conn !== 'string' || typeof o.frame !== 'object' || o.frame === null) throw new Error('not a push');
  return o;
}
