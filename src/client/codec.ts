/**
 * Frame encoding per subprotocol (PROTOCOL.md §1): `sb.v1.json` as text, `sb.v1.msgpack` as
 * binary. Platform-neutral (no Node Buffer), so the same codec serves browsers, Node and,
 * if it likes, the server.
 */
import { Packr, Unpackr } from 'msgpackr';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Encoding } from '../protocol/codes.js';

/** Any decoded frame: an object with a string `t`. */
export type WireFrame = { t: string } & Record<string, unknown>;
export type WireData = string | ArrayBuffer | ArrayBufferView;

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

export interface Codec {
  readonly encoding: Encoding;
  readonly subprotocol: string;
  /** A string (JSON, send as a text frame) or bytes (MessagePack, a binary frame). Undefined fields are left out. */
  encode(frame: object): string | Uint8Array;
  /** Parses one frame; throws CodecError when it is not an object with a string `t`. */
  decode(data: WireData): WireFrame;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** The number of bytes an encoded frame takes on the wire. */
export function byteLength(encoded: string | Uint8Array): number {
  if (typeof encoded !== 'string') return encoded.byteLength;
  return utf8Length(encoded);
}

/** UTF-8 length of a string without allocating (lone surrogates count 3, as TextEncoder writes U+FFFD). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function checkFrame(v: unknown): WireFrame {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new CodecError('frame is not an object');
  }
  if (typeof (v as { t?: unknown }).t !== 'string') throw new CodecError('frame has no string field t');
  return v as WireFrame;
}

/** A deep copy of plain objects and arrays without `undefined` fields (MessagePack would encode them). */
export function stripUndefined<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x: unknown) => stripUndefined(x)) as T;
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = stripUndefined(x);
    return out as T;
  }
  return v;
}

export const jsonCodec: Codec = {
  encoding: 'json',
  subprotocol: SUBPROTOCOL_JSON,
  encode: (frame) => JSON.stringify(frame),
  decode(data) {
    let text: string;
    try {
      text = typeof data === 'string' ? data : utf8Decoder.decode(toBytes(data));
    } catch {
      throw new CodecError('frame is not valid UTF-8');
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new CodecError('frame is not valid JSON');
    }
    return checkFrame(v);
  },
};

export function createMsgpackCodec(): Codec {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  // 64-bit integers from other encoders come back as numbers (all protocol ints are ≤ 2^53).
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
  return {
    encoding: 'msgpack',
    subprotocol: SUBPROTOCOL_MSGPACK,
    encode: (frame) => packr.pack(stripUndefined(frame)) as Uint8Array,
    decode(data) {
      if (typeof data === 'string') throw new CodecError('text frame on a msgpack connection');
      let v: unknown;
      try {
        v = unpackr.unpack(toBytes(data));
      } catch {
        throw new CodecError('frame is not valid MessagePack');
      }
      return checkFrame(v);
    },
  };
}

export function createCodec(encoding: Encoding = 'json'): Codec {
  if (encoding === 'json') return jsonCodec;
  if (encoding === 'msgpack') return createMsgpackCodec();
  throw new Error(`unknown encoding ${String(encoding)}`);
}

/** The encoding a negotiated subprotocol stands for; '' (none offered) means JSON. */
export function encodingOf(subprotocol: string): Encoding | null {
  if (subprotocol === '' || subprotocol === SUBPROTOCOL_JSON) return 'json';
  if (subprotocol === SUBPROTOCOL_MSGPACK) return 'msgpack';
  return null;
}
