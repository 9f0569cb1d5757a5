import { describe, expect, it } from 'vitest';
import { byteLength, CodecError, createCodec, encodingOf, stripUndefined, utf8Length } from '../../src/client/codec.js';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../../src/protocol/codes.js';

const frames: object[] = [
  { t: 'hello', token: 'eyJ.x.y', device: 'phone' },
  { t: 'welcome', user: 'alice', node: 'n1', time: 1_733_300_000_123 },
  {
    t: 'msg',
    conv: 'dm:alice:bob',
    seq: 9_007_199_254_740_991,
    from: 'bob',
    cmid: 'c-1',
    ts: 1_733_300_000_123,
    kind: 'media',
    body: 'héllo 👋 \u0000 "quoted"',
    media: { id: 'm1', mime: 'image/png', size: 1234, name: 'a.png' },
    reply: { seq: 3 },
  },
  { t: 'msg', conv: 'g:abc', seq: 1, from: 'a', cmid: 'x', ts: 1, kind: 'system', sys: { op: 'create', by: 'a', users: ['b', 'c'], title: 'T' } },
  { t: 'ack', re: 7, conv: 'dm:a:b', seq: 4, cmid: 'c', ts: 5, dup: true },
  { t: 'err', re: 'r1', code: 'rate_limited', msg: 'slow down', retryMs: 250 },
  { t: 'ok', re: 3, convs: { 'dm:a:b': 4, 'g:x': 0 }, denied: [] },
  { t: 'presence', user: 'bob', online: false, lastSeen: null },
  { t: 'synced' },
];

describe.each(['json', 'msgpack'] as const)('codec %s', (encoding) => {
  const codec = createCodec(encoding);

  it('names its subprotocol', () => {
    expect(codec.subprotocol).toBe(encoding === 'json' ? SUBPROTOCOL_JSON : SUBPROTOCOL_MSGPACK);
    expect(encodingOf(codec.subprotocol)).toBe(encoding);
  });

  it.each(frames.map((f) => [(f as { t: string }).t, f]))('round-trips %s', (_t, frame) => {
    const wire = codec.encode(frame);
    if (encoding === 'json') expect(typeof wire).toBe('string');
    else expect(wire).toBeInstanceOf(Uint8Array);
    expect(codec.decode(wire)).toEqual(frame);
  });

  it('decodes ArrayBuffer and offset views (what binaryType=arraybuffer hands over)', () => {
    const frame = frames[2] as object;
    const wire = codec.encode(frame);
    const bytes = typeof wire === 'string' ? new TextEncoder().encode(wire) : wire;
    const ab = Uint8Array.from(bytes).buffer;
    expect(codec.decode(ab)).toEqual(frame);
    const padded = new Uint8Array(bytes.byteLength + 7);
    padded.set(bytes, 3);
    expect(codec.decode(new Uint8Array(padded.buffer, 3, bytes.byteLength))).toEqual(frame);
    expect(codec.decode(new DataView(padded.buffer, 3, bytes.byteLength))).toEqual(frame);
  });

  it('leaves out undefined fields', () => {
    const out = codec.decode(codec.encode({ t: 'send', id: 1, cmid: 'c', body: 'x', to: undefined, media: { id: 'm', mime: 'a/b', size: 1, name: undefined } }));
    expect(out).toEqual({ t: 'send', id: 1, cmid: 'c', body: 'x', media: { id: 'm', mime: 'a/b', size: 1 } });
    expect('to' in out).toBe(false);
  });

  it('refuses what is not an object with a string t', () => {
    const bad: unknown[] = [[1, 2], 'str', 42, null, { x: 1 }, { t: 5 }];
    for (const v of bad) {
      const wire = encoding === 'json' ? JSON.stringify(v) : (createCodec('msgpack').encode as (x: unknown) => Uint8Array)(v);
      expect(() => codec.decode(wire)).toThrow(CodecError);
    }
    expect(() => codec.decode(new Uint8Array([0xc1, 0xff, 0x00]))).toThrow(CodecError);
  });
});

describe('codec details', () => {
  it('json refuses invalid JSON and msgpack refuses text frames', () => {
    expect(() => createCodec('json').decode('{nope')).toThrow(CodecError);
    expect(() => createCodec('msgpack').decode('{"t":"x"}')).toThrow(CodecError);
  });

  it('msgpack reads 64-bit integers from other encoders as numbers', () => {
    // {t:"x", n: uint64 5, m: int64 -2}
    const bytes = new Uint8Array([
      0x83, 0xa1, 0x74, 0xa1, 0x78, 0xa1, 0x6e, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xa1, 0x6d, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    ]);
    expect(createCodec('msgpack').decode(bytes)).toEqual({ t: 'x', n: 5, m: -2 });
  });

  it('msgpack maps decode to plain objects, not Map', () => {
    const c = createCodec('msgpack');
    const out = c.decode(c.encode({ t: 'ok', re: 1, convs: { a: 1 } }));
    expect(out.convs).not.toBeInstanceOf(Map);
    expect(Object.getPrototypeOf(out.convs)).toBe(Object.prototype);
  });

  it('encoded frames do not share bytes (each pack is its own view)', () => {
    const c = createCodec('msgpack');
    const a = c.encode({ t: 'a', body: 'first' }) as Uint8Array;
    const copy = Uint8Array.from(a);
    c.encode({ t: 'b', body: 'second, a different frame' });
    expect(Array.from(a)).toEqual(Array.from(copy));
  });

  it('utf8Length matches TextEncoder', () => {
    for (const s of ['', 'abc', 'é', '€', '👋', 'a👋b€é', '\ud800x', 'x\udc00']) {
      expect(utf8Length(s)).toBe(new TextEncoder().encode(s).byteLength);
    }
    expect(byteLength(new Uint8Array(9))).toBe(9);
  });

  it('stripUndefined copies plain objects deeply and keeps other values', () => {
    expect(stripUndefined({ a: undefined, b: [1, { c: undefined, d: 2 }], e: null })).toEqual({ b: [1, { d: 2 }], e: null });
    expect(encodingOf('')).toBe('json');
    expect(encodingOf('other')).toBeNull();
  });
});
