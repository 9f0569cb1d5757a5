/** Partition → node over the live members: a consistent hash ring (`hashring`), deterministic for any insertion order. */
import HashRing from 'hashring';

export function ownersOf(members: string[], partitions: number): string[] {
  if (members.length === 0) return [];
  const ring = new HashRing([...members].sort());
  return Array.from({ length: partitions }, (_, p) => ring.get(`partition-${p}`));
}
