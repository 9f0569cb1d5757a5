/**
 * The media contract against S3MediaStore, on a real S3-compatible server started here
 * (versitygw, test/helpers/s3.ts; built into .cache/bin by scripts/versitygw.mjs if missing).
 */
import { mediaContract } from '../contract/media.contract.js';
import { startS3Server } from '../helpers/s3.js';

mediaContract('s3', async () => {
  const s3 = await startS3Server();
  return {
    settings: {
      s3Endpoint: s3.endpoint,
      s3Region: s3.region,
      s3Bucket: s3.bucket,
      s3AccessKey: s3.accessKey,
      s3SecretKey: s3.secretKey,
    },
    holds: async (_node, id) => (await s3.keys(`media/${id}`)).length > 0,
    stop: () => s3.stop(),
  };
});
