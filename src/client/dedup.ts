/**
 * "Clients drop a (conv, seq) they have" (PROTOCOL.md §4.4). Per conversation: the highest
 * contiguous seq seen (`floor`: every seq ≤ floor counts as seen) plus a bounded set of the
 * seqs seen above it. When that set outgrows its window, the floor jumps to the lowest of
 * them: a gap that old is taken as never coming (seqs before a group join, say), which keeps
 * memory bounded. The number of conversations tracked is bounded too (least recently used
 * dropped first).
 */

export interface DedupOptions {
  /** Most seqs kept above the contiguous floor per conversation; default 512. */
  window?: number;
  /** Most conversations tracked; default 10000. */
  maxConvs?: number;
}

interface ConvWindow {
  floor: number;
  above: Set<number>;
}

export class SeqDedup {
  private readonly convs = new Map<string, ConvWindow>();
  private readonly window: number;
  private readonly maxConvs: number;

  constructor(opts: DedupOptions = {}) {
    this.window = Math.max(1, opts.window ?? 512);
    this.maxConvs = Math.max(1, opts.maxConvs ?? 10_000);
  }

  /** Records (conv, seq); true when it was not seen before, false for a duplicate. */
  add(conv: string, seq: number): boolean {
    const w = this.touch(conv);
    if (seq <= w.floor || w.above.has(seq)) return false;
    if (seq === w.floor + 1) {
      w.floor = seq;
      this.advance(w);
    } else {
      w.above.add(seq);
      if (w.above.size > this.window) this.squeeze(w);
    }
    return true;
  }

  has(conv: string, seq: number): boolean {
    const w = this.convs.get(conv);
    return !!w && (seq <= w.floor || w.above.has(seq));
  }

  /** The highest seq n such that every seq ≤ n counts as seen (0 for an unknown conversation). */
  floor(conv: string): number {
    return this.convs.get(conv)?.floor ?? 0;
  }

  /** The seqs held above the floor, ascending. */
  above(conv: string): number[] {
    const w = this.convs.get(conv);
    return w ? [...w.above].sort((a, b) => a - b) : [];
  }

  /** Counts everything ≤ seq as seen (e.g. from a known watermark). Never lowers the floor. */
  seed(conv: string, seq: number): void {
    const w = this.touch(conv);
    if (seq <= w.floor) return;
    w.floor = seq;
    for (const s of w.above) if (s <= seq) w.above.delete(s);
    this.advance(w);
  }

  forget(conv: string): void {
    this.convs.delete(conv);
  }

  clear(): void {
    this.convs.clear();
  }

  get size(): number {
    return this.convs.size;
  }

  private touch(conv: string): ConvWindow {
    let w = this.convs.get(conv);
    if (w) {
      // Move to the back: Map order is the LRU order.
      this.convs.delete(conv);
    } else {
      w = { floor: 0, above: new Set() };
      if (this.convs.size >= this.maxConvs) {
        const oldest = this.convs.keys().next();
        if (!oldest.done) this.convs.delete(oldest.value);
      }
    }
    this.convs.set(conv, w);
    return w;
  }

  private advance(w: ConvWindow): void {
    while (w.above.delete(w.floor + 1)) w.floor++;
  }

  private squeeze(w: ConvWindow): void {
    while (w.above.size > this.window) {
      let min = Infinity;
      for (const s of w.above) if (s < min) min = s;
      w.above.delete(min);
      w.floor = min;
      this.advance(w);
    }
  }
}
