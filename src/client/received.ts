/** The seqs this client has seen per conversation, for tests and apps: sorted, bounded per conversation. */

export class SeqLog {
  private readonly logs = new Map<string, number[]>();
  constructor(private readonly limit = 10_000) {}

  add(conv: string, seq: number): void {
    if (this.limit <= 0) return;
    let a = this.logs.get(conv);
    if (!a) {
      a = [];
      this.logs.set(conv, a);
    }
    const last = a[a.length - 1];
    if (last === undefined || seq > last) a.push(seq);
    else {
      let lo = 0;
      let hi = a.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((a[mid] as number) < seq) lo = mid + 1;
        else hi = mid;
      }
      if (a[lo] === seq) return;
      a.splice(lo, 0, seq);
    }
    if (a.length > this.limit) a.splice(0, a.length - this.limit);
  }

  /** Ascending seqs seen for conv (the newest `limit` of them). */
  get(conv: string): number[] {
    return [...(this.logs.get(conv) ?? [])];
  }

  convs(): string[] {
    return [...this.logs.keys()];
  }

  clear(): void {
    this.logs.clear();
  }
}
