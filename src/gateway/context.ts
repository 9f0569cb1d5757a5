/** What a client connection needs from its node; built once by the gateway. */
import type { Config } from '../config.js';
import type { Log } from '../actors/ports/index.js';
import type { Encoding } from '../protocol/codes.js';
import type { ServerFrame } from '../protocol/frames.js';
import type { Router } from '../cluster/router.js';
import type { Metrics } from '../metrics.js';
import type { Auth } from './auth.js';
import type { Queries } from './queries.js';
import type { ClientConnection } from './connection.js';
import type { MediaService } from './media.js';

export interface GatewayContext {
  node: string;
  config: Config;
  log: Log;
  auth: Auth;
  router: Pick<Router, 'toConversation' | 'toUser'>;
  queries: Queries;
  metrics: Metrics;
  /** Media sharing; null: `media.put`/`media.get` answer unavailable. */
  media: MediaService | null;
  /** The id of the group created by (creator, cmid): deterministic, so a retried create finds it. */
  groupId(creator: string, cmid: string): string;
  encode(frame: ServerFrame, encoding: Encoding): string | Buffer;
  forget(conn: ClientConnection): void;
  /** The connection's hello was accepted: its hello deadline no longer applies. */
  signedIn(conn: ClientConnection): void;
}
