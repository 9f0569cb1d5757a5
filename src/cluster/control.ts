/**
 * Cluster control over NATS KV: the cluster-wide partition count (fixed when the cluster
 * is first created), membership, ownership epochs and the coordinator that places
 * partitions on this node.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import type { Log } from '../actors/ports/index.js';
import { Membership, type MemberRecord } from './membership.js';
import { Epochs } from './epochs.js';
import { Coordinator, type PartitionHost } from './coordinator.js';

export interface ClusterControlOptions {
  nc: NatsConnection;
  node: string;
  boot: string;
  partitions: number;
  replicas: number;
  heartbeatMs: number;
  failureMs: number;
  ackWaitMs: number;
  handoffMs: number;
  host: PartitionHost;
  log: Log;
  onOwnersChanged?(prev: string[], next: string[], gone: MemberRecord[]): void;
  onMoved?(partition: number, ms: number): void;
  /** Some node (this one included) started serving `partition`: its users' connections attach there. */
  onAcquiredAnywhere?(partition: number): void;
  /** This node is back from a stall or a NATS blind spot (the others may have dropped it meanwhile). */
  onResync?(): void;
  /**
   * The coordinator exists (before it places partitions): the node's actors look their
   * partition's epoch up in it as soon as the first partition is served, which is before
   * `startClusterControl` returns.
   */
  onCoordinator?(coordinator: Coordinator): void;
}

/** Announces, to every node, that a partition is now served (and where its users' actors live). */
const ACQUIRED = 'sb.acquired';

export class PartitionCountMismatch extends Error {}

export interface ClusterControl {
  coordinator: Coordinator;
  membership: Membership;
  stop(): Promise<void>;
}

export async function startClusterControl(o: ClusterControlOptions): Promise<ClusterControl> {
  const kvm = new Kvm(o.nc);
  // Right after a new R3 bucket is created its leader may not be elected yet ("no responders").
  const bucket = async (name: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        const kv = await kvm.create(name, { history: 1, replicas: o.replicas });
        await kv.get('probe');
        return kv;
      } catch (err) {
        if (attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  const meta = await bucket('sb_cluster');
  try {
    await meta.create('partitions', String(o.partitions));
  } catch {
    const stored = Number((await meta.get('partitions'))?.string());
    if (stored !== o.partitions) {
      throw new PartitionCountMismatch(`the cluster was created with ${stored} partitions; this node is configured with ${o.partitions} (set SB_PARTITIONS=${stored})`);
    }
  }
  const members = await bucket('sb_members');
  const epochsKv = await bucket('sb_epochs');
  const membership = new Membership({ kv: members, node: o.node, boot: o.boot, heartbeatMs: o.heartbeatMs, failureMs: o.failureMs, log: o.log });
  const coordinator = new Coordinator({
    node: o.node,
    boot: o.boot,
    partitions: o.partitions,
    membership,
    epochs: new Epochs(epochsKv, o.node, o.boot),
    host: o.host,
    ackWaitMs: o.ackWaitMs,
    handoffWaitMs: o.handoffMs,
    log: o.log,
    ...(o.onOwnersChanged ? { onOwnersChanged: o.onOwnersChanged } : {}),
    onMoved: (p, ms) => {
      o.onMoved?.(p, ms);
      o.nc.publish(ACQUIRED, String(p));
    },
  });
  o.onCoordinator?.(coordinator);
  const acquired = o.nc.subscribe(ACQUIRED, {
    callback: (err, msg) => {
      if (!err) o.onAcquiredAnywhere?.(Number(msg.string()));
    },
  });
  if (o.onResync) membership.onResync(o.onResync);
  await membership.start();
  await coordinator.start();
  // A claim of a partition this node holds, by another node or incarnation: it was fenced.
  const claims = await epochsKv.watch({ key: '>' });
  void (async () => {
    for await (const e of claims) {
      if (e.operation !== 'PUT' || !/^p\d+$/.test(e.key)) continue;
      const p = Number(e.key.slice(1));
      if (coordinator.epochOf(p) === undefined) continue;
      try {
        const rec = e.json<{ node: string; boot: string }>();
        if (rec.node !== o.node || rec.boot !== o.boot) coordinator.fenced(p);
      } catch {
        /* not an epoch record */
      }
    }
  })();
  return {
    coordinator,
    membership,
    stop: async () => {
      claims.stop();
      acquired.unsubscribe();
      await coordinator.stop();
    },
  };
}
