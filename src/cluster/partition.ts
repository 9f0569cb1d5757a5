/** Key → partition: a stable hash (FNV-1a, 32 bit) modulo a fixed partition count. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

export const convKey = (conv: string): string => `c:${conv}`;
export const userKey = (user: string): string => `u:${user}`;
