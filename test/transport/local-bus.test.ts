import { busContract } from '../contract/bus.contract.js';
import { LocalBus } from '../../src/transport/local-bus.js';
import { silentLog } from '../../src/actors/ports/index.js';
import type { ActorEnvelope } from '../../src/transport/bus.js';

busContract('LocalBus', async () => {
  const deadLetters: ActorEnvelope[] = [];
  const bus = new LocalBus({ log: silentLog, maxDeliver: 3, backoffMs: [50, 100], onDeadLetter: (e) => deadLetters.push(e) });
  return { bus, deadLetters, redeliveryMs: 100, close: () => bus.close() };
});
