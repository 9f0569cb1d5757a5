/** Frame encoding per negotiated subprotocol: JSON text frames or MessagePack binary frames. */
import { Packr, Unpackr } from 'msgpackr';
import type { Encoding } from '../protocol/codes.js';
import type { ServerFrame } from '../protocol/frames.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export class DecodeError extends Error {}

export function decodeFrame(data: Buffer, isBinary: boolean, encoding: Encoding): unknown {
  if (encoding === 'json') {
    if (isBinary) throw new DecodeError('expected a text frame with JSON');
    try {
      return JSON.parse(data.toString('utf8'));
    } catch {
      throw new DecodeError('not valid JSON');
    }
  }
  if (!isBinary) throw new DecodeError('expected a binary frame with MessagePack');
  try {
    return unpackr.unpack(data);
  } catch {
    throw new DecodeError('not valid MessagePack');
  }
}

export function encodeFrame(frame: ServerFrame, encoding: Encoding): string | Buffer {
  return encoding === 'json' ? JSON.stringify(frame) : packr.pack(frame);
}
