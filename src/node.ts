#!/usr/bin/env node
/**
 * The composition root: reads the settings, builds the store, the bus, the actor
 * registries, the router and the gateway, and wires them together. The only file that
 * reads the environment or exits. `startNode` is also what the tests use in-process.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { start as startActorSystem, stop as stopActorSystem } from 'nact';
import { pino, type Logger } from 'pino';
import { CommanderError } from 'commander';
import { type Config, ConfigError, loadConfig } from './config.js';
import type { ConversationCommand, Store, UserCommand } from './actors/ports/index.js';
import { ActorRegistry } from './actors/registry.js';
import { ConversationActor } from './actors/conversation.js';
import { UserActor } from './actors/user.js';
import { Router } from './cluster/router.js';
import { LocalBus } from './transport/local-bus.js';
import { JetStreamBus } from './transport/jetstream-bus.js';
import { CqlStore } from './storage/cql-store.js';
import { startClusterControl, type ClusterControl } from './cluster/control.js';
import type { Coordinator } from './cluster/coordinator.js';
import { convKey, partitionOf } from './cluster/partition.js';
import { RequestError } from './actors/ports/index.js';
import { randomBytes } from 'node:crypto';
import type { Bus } from './transport/bus.js';
import { SqliteStore } from './storage/sqlite-store.js';
import { Gateway } from './gateway/server.js';
import { Auth } from './gateway/auth.js';
import { Queries } from './gateway/queries.js';
import { Metrics } from './metrics.js';
import type { MediaStore } from './actors/ports/index.js';
import { LastSeenWriter } from './actors/last-seen.js';
import { MediaService } from './gateway/media.js';
import { FsMediaStore } from './storage/fs-media-store.js';
import { S3MediaStore, S3SetupError } from './storage/s3-media-store.js';
import { CLOSE } from './protocol/codes.js';
import { webApp } from './gateway/static.js';

export interface RunningNode {
  config: Config;
  node: string;
  port: number;
  url: string;
  store: Store;
  auth: Auth;
  log: Logger;
  /** Graceful stop: stop accepting, close sockets with 1001, flush, release. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
}

/**
 * `retryMs` of the `unavailable` answer while a conversation's partition moves between nodes:
 * a planned move takes tens of ms and a takeover about a heartbeat once the failure is
 * detected, so clients retry soon instead of backing off for seconds.
 */
const MOVING_RETRY_MS = 200;

async function openStore(config: Config, onFailure: (err: Error) => void): Promise<Store> {
  if (config.cqlContactPoints) {
    return CqlStore.open({
      contactPoints: config.cqlContactPoints,
      localDataCenter: config.cqlDc,
      keyspace: config.cqlKeyspace,
      replication: config.cqlReplication,
      consistency: config.cqlConsistency,
    });
  }
  if (config.natsUrl) {
    throw new ConfigError('SB_CQL_CONTACT_POINTS', 'cluster mode (SB_NATS_URL) needs the shared CQL store: set SB_CQL_CONTACT_POINTS');
  }
  mkdirSync(config.dataDir, { recursive: true });
  return SqliteStore.open({ path: join(resolve(config.dataDir), 'switchboard.db'), synchronous: config.sqliteSync, onFailure });
}

/** The media store: S3 when SB_S3_BUCKET is set, else files under SB_DATA_DIR/media served by this node. */
async function openMediaStore(config: Config, log: Logger, fallbackBaseUrl: () => string): Promise<MediaStore> {
  if (config.s3) {
    const s3 = new S3MediaStore({ ...config.s3, log });
    try {
      await s3.check();
    } catch (err) {
      await s3.close();
      throw err instanceof S3SetupError ? new ConfigError(err.setting, err.message) : err;
    }
    return s3;
  }
  const dir = join(resolve(config.dataDir), 'media');
  mkdirSync(dir, { recursive: true });
  return new FsMediaStore({ dir, secret: config.jwtSecret, baseUrl: config.mediaBaseUrl, fallbackBaseUrl, log });
}

async function openBus(config: Config, log: Logger, metrics: Metrics): Promise<Bus> {
  const hooks = {
    onRedeliver: () => metrics.redeliveries.inc(),
    onDeadLetter: () => metrics.deadLetters.inc(),
  };
  if (config.natsUrl) {
    return JetStreamBus.connect({
      servers: config.natsUrl,
      log,
      partitions: config.partitions,
      replicas: config.natsReplicas,
      ackWaitMs: config.ackWaitMs,
      name: config.nodeId,
      ...hooks,
    });
  }
  return new LocalBus({ log, ...hooks });
}

export async function startNode(config: Config, opts: StartOptions = {}): Promise<RunningNode> {
  const log = opts.log ?? pino({ level: config.logLevel, base: { node: config.nodeId } });
  const web = webApp(config, log);
  const metrics = new Metrics();
  // Writes cannot succeed any more: every send is refused (`unavailable`), and /healthz says why
  // (the gateway exists from a little later on; the store only reports this after opening).
  let gateway: Gateway | undefined;
  const store = await openStore(config, (err) => {
    log.fatal({ err: String(err) }, 'store writer failed: writes are refused until the node restarts');
    gateway?.markFailed(`store writer: ${err.message}`);
  });
  const bus = await openBus(config, log, metrics);
  const system = startActorSystem();
  const auth = new Auth(config.jwtSecret);
  const onActorError = (key: string, err: unknown) => log.error({ key, err: String(err) }, 'actor error');
  let httpBase = '';
  const mediaStore = await openMediaStore(config, log, () => httpBase);
  const media = new MediaService({
    store,
    media: mediaStore,
    log,
    maxSize: config.maxMedia,
    urlTtlMs: config.mediaUrlTtlMs,
    orphanMs: config.mediaOrphanMs,
  });
  if (mediaStore instanceof FsMediaStore) mediaStore.setUploadedHook(media.uploaded);
  const lastSeen = new LastSeenWriter({ store, log, flushMs: 1000 });

  // The registries and the router refer to each other: the router is the actors' courier.
  let router!: Router;
  const courier = {
    toUser: (cmd: UserCommand) => router.toUser(cmd),
    toConnection: (...args: Parameters<Router['toConnection']>) => router.toConnection(...args),
  };
  const conversations = new ActorRegistry<ConversationCommand>(
    system,
    'conv',
    (conv) =>
      new ConversationActor(conv, {
        store,
        courier,
        log,
        epoch: (conv) => {
          if (!coordinator) {
            if (config.natsUrl) throw new RequestError('unavailable', 'the node is joining the cluster, retry', MOVING_RETRY_MS);
            return 1;
          }
          const epoch = coordinator.epochOf(partitionOf(convKey(conv), config.partitions));
          if (epoch === undefined) throw new RequestError('unavailable', 'conversation is moving between nodes, retry', MOVING_RETRY_MS);
          return epoch;
        },
        now: Date.now,
        maxGroup: config.maxGroup,
        maxBatch: config.commitBatch,
        groupReceiptMs: 1000,
        watermarkFlushMs: 50,
        completeUpload: (rec) => media.complete(rec),
        onCommit: (n, ms) => {
          metrics.committed.inc(n);
          metrics.commitBatch.observe(n);
          metrics.commitSeconds.observe(ms / 1000);
        },
      }),
    { idleMs: config.actorIdleMs, onError: onActorError },
  );
  // One deps object for every user actor; idle users' actors are parked (registry.ts).
  const userDeps = { store, courier, log, onlineWindowMs: config.onlineWindowMs, lastSeen, now: Date.now };
  const users = new ActorRegistry<UserCommand>(system, 'user', (user) => new UserActor(user, userDeps), {
    idleMs: Math.min(config.actorIdleMs, 10_000),
    parkAfterMs: 1000,
    onError: onActorError,
  });
  gateway = new Gateway({
    config,
    node: config.nodeId,
    log,
    auth,
    queries: new Queries(store),
    metrics,
    router: { toConversation: (cmd) => router.toConversation(cmd), toUser: (cmd) => router.toUser(cmd) },
    storeInfo: () => store.info(),
    media,
    routes: [...(mediaStore instanceof FsMediaStore ? [mediaStore.route] : []), ...(web ? [web] : [])],
  });
  router = new Router({
    node: config.nodeId,
    partitions: config.partitions,
    bus,
    conversations,
    users,
    localPush: (conn, frame) => gateway.push(conn, frame),
  });
  metrics.onCollect(() => {
    metrics.actors.set({ kind: 'conversation' }, conversations.size);
    metrics.actors.set({ kind: 'user' }, users.size);
  });

  await router.start();
  let control: ClusterControl | null = null;
  let coordinator: Coordinator | null = null;
  if (bus instanceof JetStreamBus) {
    control = await startClusterControl({
      nc: bus.nc,
      node: config.nodeId,
      boot: randomBytes(6).toString('hex'),
      partitions: config.partitions,
      replicas: config.natsReplicas,
      heartbeatMs: config.heartbeatMs,
      failureMs: config.failureMs,
      ackWaitMs: config.ackWaitMs,
      handoffMs: config.handoffMs,
      host: router,
      log,
      // Connections re-attach when the new owner announces it serves the partition
      // (onAcquiredAnywhere), not at the ring change, when the old owner may still consume.
      onOwnersChanged: (_prev, _next, gone) => {
        const goneNodes = new Set(gone.map((g) => g.node));
        if (goneNodes.size > 0) users.forEach((actor) => (actor as UserActor).dropNodes(goneNodes));
      },
      onMoved: (_p, ms) => metrics.partitionMoves.observe(ms / 1000),
      // Every gateway attaches its connections of this partition's users to the new owner,
      // whichever way ownership moved (a ring change everyone saw, or a fenced re-acquire).
      onAcquiredAnywhere: (p) => gateway.reattach((q) => q === p, config.partitions),
      // The others may have dropped this node's connections from their user actors: attach them again.
      onResync: () => gateway.reattach(() => true, config.partitions),
      onCoordinator: (c) => (coordinator = c),
    });
  } else {
    for (let p = 0; p < config.partitions; p++) await router.acquire(p);
  }
  const address = await gateway.listen();
  gateway.markReady();
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  httpBase = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  media.startSweeper();
  log.info({ port: address.port, store: store.info(), dev: config.dev }, 'node ready');

  let stopping: Promise<void> | null = null;
  return {
    config,
    node: config.nodeId,
    port: address.port,
    url: `ws://${host}:${address.port}/ws`,
    store,
    auth,
    log,
    stop: () =>
      (stopping ??= (async () => {
        gateway.stopAccepting();
        // Hand every partition off before the sockets close, so their users reconnect to a ready cluster.
        await control?.stop();
        await gateway.close(CLOSE.goingAway);
        await router.stop();
        await conversations.stopAll();
        await users.stopAll();
        await lastSeen.close();
        await media.stop();
        await mediaStore.close();
        await bus.close();
        stopActorSystem(system);
        await store.close();
        log.info({}, 'node stopped');
      })()),
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof CommanderError && (err.code === 'commander.helpDisplayed' || err.code === 'commander.help')) process.exit(0);
    const msg = err instanceof CommanderError ? err.message.replace(/^error: /, '') : err instanceof Error ? err.message : String(err);
    process.stderr.write(`switchboard: bad setting: ${msg}\n`);
    process.exit(2);
  }
  let node: RunningNode;
  try {
    node = await startNode(config);
  } catch (err) {
    const msg = err instanceof ConfigError ? `bad setting: ${err.message}` : `cannot start: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`switchboard: ${msg}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  if (config.dev) {
    process.stdout.write(
      `\nSwitchboard dev node on http://127.0.0.1:${node.port}\n` +
        (config.web ? `  web app:   http://localhost:${node.port}/ (open it in two tabs)\n` : '') +
        `  token:     curl 'http://127.0.0.1:${node.port}/dev/token?user=alice'\n` +
        `  websocket: ${node.url}\n  health:    http://127.0.0.1:${node.port}/healthz\n\n`,
    );
  }
  const shutdown = (signal: string) => {
    node.log.info({ signal }, 'draining');
    node.stop().then(
      () => process.exit(0),
      (err) => {
        node.log.error({ err: String(err) }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  void main();
}
