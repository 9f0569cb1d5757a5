import { describe, expect, it } from 'vitest';
import { DeliveryOrder } from '../src/gateway/delivery-order.js';
import type { ChatMessage } from '../src/protocol/frames.js';

const m = (seq: number, extra: Partial<ChatMessage> = {}): ChatMessage => ({ conv: 'g:x', seq, from: 'bob', cmid: `c${seq}`, ts: 1, kind: 'text', ...extra });

function run(order: DeliveryOrder, msg: ChatMessage) {
  const d = order.decide(msg);
  if (d.action === 'push') order.pushed(msg);
  return d;
}

describe('delivery order (per connection)', () => {
  it('pushes in order, drops repeats and older seqs, reports gaps', () => {
    const o = new DeliveryOrder('alice');
    o.known('g:x', 3);
    expect(run(o, m(3))).toEqual({ action: 'drop' });
    expect(run(o, m(4))).toEqual({ action: 'push' });
    expect(run(o, m(4))).toEqual({ action: 'drop' });
    expect(run(o, m(7))).toEqual({ action: 'fill', from: 5, to: 6 });
  });

  it("counts the connection's own acked sends as had, also when the ack overtakes earlier messages", () => {
    const o = new DeliveryOrder('alice');
    o.known('g:x', 9);
    o.own('g:x', 11);
    expect(run(o, m(10))).toEqual({ action: 'push' });
    expect(o.last('g:x')).toBe(11);
    expect(run(o, m(12))).toEqual({ action: 'push' });
  });

  it('forgets a conversation on removal and starts afresh on re-add (no back-fill of what was missed)', () => {
    const o = new DeliveryOrder('alice');
    o.known('g:x', 5);
    expect(run(o, m(6, { kind: 'system', sys: { op: 'remove', by: 'bob', users: ['alice'] } }))).toEqual({ action: 'push' });
    expect(o.last('g:x')).toBeUndefined();
    expect(run(o, m(20, { kind: 'system', sys: { op: 'add', by: 'bob', users: ['alice'] } }))).toEqual({ action: 'push' });
    expect(run(o, m(21))).toEqual({ action: 'push' });
  });
});
