/**
 * Property: random and malformed frames thrown at a live node never crash it, never get
 * anything but a well-formed reply, and never disturb another client's conversation, which
 * carries on (contiguous seqs, every message delivered once) while the fuzzer runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { RawClient } from '../helpers/raw.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { ERROR_CODES } from '../../src/protocol/codes.js';

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode({ rate: '100000' });
});
afterAll(async () => {
  await node?.stop();
});

const packr = new Packr({ useRecords: false });
const types = ['hello', 'send', 'recv', 'read', 'typing', 'active', 'presence.sub', 'group.create', 'group.add', 'group.remove', 'group.leave', 'group.info', 'convs', 'history', 'sync', 'info', 'ping', 'media.get', 'bogus'];
const convs = ['dm:alice:bob', 'dm:fuzz:victim', 'g:nope', 'dm:b:a', '', 'x'.repeat(300)];
const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }));
const frameArb = fc.record(
  {
    t: fc.constantFrom(...types),
    id: fc.oneof(fc.integer(), fc.string({ maxLength: 70 }), fc.constant(undefined)),
    conv: fc.oneof(fc.constantFrom(...convs), anyValue),
    to: fc.oneof(fc.constantFrom('victim', 'alice', 'fuzz', '', 'bad id!'), anyValue),
    cmid: fc.oneof(fc.string({ maxLength: 70 }), anyValue),
    body: fc.oneof(fc.string({ maxLength: 50 }), anyValue),
    seq: fc.oneof(fc.integer(), fc.constant(-1), fc.constant(2 ** 60), anyValue),
    users: fc.oneof(fc.array(fc.constantFrom('victim', 'alice', 'x', ''), { maxLength: 4 }), anyValue),
    members: fc.oneof(fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }), anyValue),
    title: anyValue,
    since: anyValue,
    ['__proto__']: anyValue,
    token: anyValue,
  },
  { requiredKeys: ['t'] },
);
const garbage = fc.oneof(fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)));

describe('fuzz', () => {
  for (const enc of ['json', 'msgpack'] as const) {
    it(`random frames (${enc}) harm nobody while another conversation carries on`, async () => {
      const alice = await RawClient.signIn(node.url, await node.token('alice'), enc);
      const bob = await RawClient.signIn(node.url, await node.token('bob'), enc);
      let sent = 0;
      let errors = 0;
      const sender = setInterval(() => {
        alice.send({ t: 'send', id: `a${sent}`, to: 'bob', cmid: `${enc}-${sent}`, body: `m${sent}` });
        sent++;
      }, 5);
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.oneof(frameArb.map((f) => ({ f })), garbage.map((g) => ({ g }))), { minLength: 1, maxLength: 15 }), async (items) => {
            const fuzz = await RawClient.signIn(node.url, await node.token('fuzz'), enc);
            for (const item of items) {
              if ('f' in item) fuzz.send(item.f as Record<string, unknown>);
              else if (enc === 'json') fuzz.sendRaw(typeof item.g === 'string' ? item.g : item.g.toString('latin1'));
              else fuzz.sendRaw(Buffer.isBuffer(item.g) ? item.g : packr.pack(item.g), true);
            }
            // The socket is still served (unless the fuzzer spent its bad-frame budget, which closes with 1008).
            const pong = await Promise.race([fuzz.request({ t: 'ping', id: 'alive' }, 5000), fuzz.closed]);
            if ('code' in pong && !('t' in pong)) expect([1008, 1009]).toContain(pong.code);
            for (const f of fuzz.frames) {
              expect(typeof f.t).toBe('string');
              if (f.t === 'err') {
                errors++;
                expect(ERROR_CODES).toContain(f.code);
              }
            }
            fuzz.close();
          }),
          { numRuns: 60 },
        );
      } finally {
        clearInterval(sender);
      }
      expect(errors).toBeGreaterThan(40);
      // The victim conversation was untouched: every send acked, contiguous, delivered once in order.
      const acks = await Promise.all(Array.from({ length: sent }, (_, i) => alice.next((f) => f.re === `a${i}`, 10_000)));
      for (const a of acks) expect(a.t).toBe('ack');
      const last = Math.max(...acks.map((a) => a.seq as number));
      await bob.next((f) => f.t === 'msg' && f.seq === last, 10_000);
      const seqs = bob.frames.filter((f) => f.t === 'msg' && f.conv === 'dm:alice:bob').map((f) => f.seq as number);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(new Set(acks.map((a) => a.seq)).size).toBe(sent);
      expect((await node.node.store.member('dm:alice:bob', 'bob'))).not.toBeNull();
      alice.close();
      bob.close();
    });
  }
});
