/**
 * Partition ownership epochs in a KV bucket, changed only by compare-and-set on the key's
 * revision: claiming a partition bumps its epoch, so a zombie owner (one that has not yet
 * noticed it lost the partition) holds a lower epoch, which the store refuses.
 */
import type { KV } from '@nats-io/kv';

export interface EpochRecord {
  node: string;
  boot: string;
  epoch: number;
  released?: boolean;
}

export class Epochs {
  constructor(
    private readonly kv: KV,
    private readonly node: string,
    private readonly boot: string,
  ) {}

  private key(p: number): string {
    return `p${p}`;
  }

  async get(p: number): Promise<{ rec: EpochRecord; revision: number } | null> {
    const e = await this.kv.get(this.key(p));
    if (!e || e.operation !== 'PUT') return null;
    return { rec: e.json<EpochRecord>(), revision: e.revision };
  }

  /** Take the partition at a new, higher epoch (CAS, retried on races); returns the epoch. */
  async claim(p: number): Promise<number> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const cur = await this.get(p);
      const next: EpochRecord = { node: this.node, boot: this.boot, epoch: (cur?.rec.epoch ?? 0) + 1 };
      try {
        if (cur) await this.kv.update(this.key(p), JSON.stringify(next), cur.revision);
        else await this.kv.create(this.key(p), JSON.stringify(next));
        return next.epoch;
      } catch {
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
      }
    }
    throw new Error(`could not claim partition ${p}`);
  }

  /** Mark the partition released after a planned hand-off (only if this node still holds `epoch`). */
  async release(p: number, epoch: number): Promise<void> {
    const cur = await this.get(p);
    if (!cur || cur.rec.node !== this.node || cur.rec.epoch !== epoch) return;
    await this.kv.update(this.key(p), JSON.stringify({ ...cur.rec, released: true }), cur.revision).catch(() => {});
  }
}
