/** The media contract against the default FsMediaStore (files under SB_DATA_DIR/media, served by the node). */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { mediaContract } from '../contract/media.contract.js';

mediaContract('fs', async () => ({
  settings: {},
  holds: async (node, id) => {
    try {
      return readdirSync(join(node.dataDir, 'media', id.slice(0, 2))).some((f) => f.startsWith(id));
    } catch {
      return false;
    }
  },
  stop: async () => {},
}));
