/**
 * The media contract (PROTOCOL.md §4.9), written once and run against every MediaStore
 * (`mediaContract('fs', …)`, `mediaContract('s3', …)`) through a real node: clients over
 * real sockets in both encodings, bytes over real HTTP to the signed URLs.
 *
 * What it holds every store to: exact bytes and type back; only metadata in the chat store;
 * the uploader and members of a conversation with a message carrying the media may get it,
 * anyone else gets not_found; a wrong or expired signature gets 403; an oversize media.put
 * gets too_large; an upload of more (or fewer) bytes than declared is refused and leaves
 * nothing; a send must carry an upload its sender completed; an upload never referenced is
 * deleted (bytes and record) after SB_MEDIA_ORPHAN_MS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { closeAll, eventually, peer, sleep, uid } from '../helpers/clients.js';
import { RawClient } from '../helpers/raw.js';
import { SwitchboardError } from '../../src/client/index.js';

export interface MediaFixture {
  /** Node settings (buildConfig keys) that select this store. */
  settings: Record<string, string>;
  /** Whether anything of the upload `id` is stored (object, file or partial file). */
  holds(node: TestNode, id: string): Promise<boolean>;
  stop(): Promise<void>;
}

const MAX = 65_536;
const URL_TTL = 1500;
const ORPHAN = 6000;

/** The signature parameter of a signed URL (FS: sig, S3: X-Amz-Signature) changed in one character. */
function tamper(url: string): string {
  const u = new URL(url);
  const name = u.searchParams.has('sig') ? 'sig' : 'X-Amz-Signature';
  const sig = u.searchParams.get(name)!;
  const last = sig.at(-1)!;
  u.searchParams.set(name, sig.slice(0, -1) + (last === 'a' ? 'b' : 'a'));
  return u.toString();
}

/** PUT with a chunked body (no Content-Length): `total` bytes in 4 KiB chunks. Resolves with the status, or 0 if the server cut the connection. */
function streamPut(url: string, headers: Record<string, string>, total: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'PUT', headers: { ...headers, 'transfer-encoding': 'chunked' } });
    let done = false;
    const finish = (status: number) => {
      if (done) return;
      done = true;
      resolve(status);
    };
    req.on('response', (res) => {
      res.resume();
      finish(res.statusCode ?? 0);
    });
    req.on('error', () => finish(0));
    let sent = 0;
    const chunk = randomBytes(4096);
    const pump = () => {
      while (sent < total && !done) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!req.write(chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

export function mediaContract(name: string, setup: () => Promise<MediaFixture>): void {
  describe(`media contract: ${name}`, () => {
    let fx: MediaFixture;
    let node: TestNode;

    beforeAll(async () => {
      fx = await setup();
      node = await startTestNode({
        ...fx.settings,
        maxMedia: String(MAX),
        mediaUrlTtlMs: String(URL_TTL),
        mediaOrphanMs: String(ORPHAN),
        rate: '100000',
      });
    }, 600_000);
    afterEach(closeAll);
    afterAll(async () => {
      await node?.stop();
      await fx?.stop();
    });

    describe.each(['json', 'msgpack'] as const)('over %s', (enc) => {
      it('uploads and downloads exact bytes with their type; the chat store keeps metadata only', async () => {
        const [a, b] = [uid('a'), uid('b')];
        const alice = await peer(node, a, enc);
        const bob = await peer(node, b, enc);
        const bytes = randomBytes(40_000);
        const ref = await alice.client.upload(bytes, { mime: 'image/png', name: 'cat.png' });
        expect(ref).toMatchObject({ mime: 'image/png', size: bytes.length, name: 'cat.png' });
        const ack = await alice.client.send({ to: b, media: ref });
        const msg = await bob.client.waitFor('msg', (m) => m.seq === ack.seq);
        expect(msg).toMatchObject({ kind: 'media', media: ref });
        const got = await bob.client.download(msg.media!);
        expect(got.mime).toBe('image/png');
        expect(Buffer.from(got.data).equals(bytes)).toBe(true);
        // the uploader may get it too
        expect(Buffer.from((await alice.client.download(ref.id)).data).equals(bytes)).toBe(true);

        const rec = await node.node.store.media(ref.id);
        expect(rec).toMatchObject({ owner: a, mime: 'image/png', size: bytes.length, name: 'cat.png' });
        expect(rec!.completedAt).toBeGreaterThan(0);
        expect(rec!.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
        await eventually(async () => expect(await node.node.store.mediaRefs(ref.id)).toEqual([ack.conv]));
        // no slice of the bytes is in the chat store's files
        const probe = bytes.subarray(1000, 1064);
        for (const f of ['switchboard.db', 'switchboard.db-wal']) {
          const p = join(node.dataDir, f);
          if (existsSync(p)) expect(readFileSync(p).includes(probe)).toBe(false);
        }
      });

      it('media.get is not_found for non-members, unknown ids and uploads not yet shared with the asker', async () => {
        const [a, b, s] = [uid('a'), uid('b'), uid('s')];
        const alice = await peer(node, a, enc);
        const bob = await peer(node, b, enc);
        const stranger = await peer(node, s, enc);
        const ref = await alice.client.upload(randomBytes(100), { mime: 'application/octet-stream' });
        const notFound = async (p: Promise<unknown>) => {
          const err = await p.then(() => null, (e: unknown) => e);
          expect(err).toBeInstanceOf(SwitchboardError);
          expect((err as SwitchboardError).code).toBe('not_found');
        };
        await notFound(bob.client.mediaGet(ref.id)); // not sent yet
        await notFound(stranger.client.mediaGet('nope' + ref.id));
        await alice.client.send({ to: b, media: ref });
        await eventually(async () => expect((await bob.client.mediaGet(ref.id)).url).toMatch(/^https?:\/\//));
        await notFound(stranger.client.mediaGet(ref.id));
        // a group: members may, a removed member may not
        const { conv } = await alice.client.groupCreate({ title: 'pics', members: [s] });
        await alice.client.send({ conv, media: ref });
        await eventually(async () => expect((await stranger.client.mediaGet(ref.id)).expires).toBeGreaterThan(Date.now()));
        await alice.client.groupRemove(conv, [s]);
        await notFound(stranger.client.mediaGet(ref.id));
      });

      it('a media.put over SB_MAX_MEDIA gets too_large and records nothing', async () => {
        const c = await RawClient.signIn(node.url, await node.token(uid('big')), enc);
        const err = await c.request({ t: 'media.put', id: 1, mime: 'video/mp4', size: MAX + 1 });
        expect(err).toMatchObject({ t: 'err', re: 1, code: 'too_large' });
        const ok = await c.request({ t: 'media.put', id: 2, mime: 'video/mp4', size: MAX });
        expect(ok).toMatchObject({ t: 'ok', re: 2, method: 'PUT', headers: { 'content-type': 'video/mp4' } });
        expect(typeof ok.media).toBe('string');
        expect(ok.expires).toBeGreaterThan(Date.now());
        expect(await c.request({ t: 'media.put', id: 3, mime: 'not a type', size: 10 })).toMatchObject({ code: 'bad_request' });
        c.close();
      });

      it('a send must carry an upload its sender completed, with its mime and size', async () => {
        const [a, b] = [uid('a'), uid('b')];
        const alice = await peer(node, a, enc);
        const bob = await peer(node, b, enc);
        const ref = await alice.client.upload(randomBytes(500), { mime: 'audio/ogg' });
        const refused = async (p: Promise<unknown>) => {
          const err = await p.then(() => null, (e: unknown) => e);
          expect((err as SwitchboardError).code).toBe('bad_request');
        };
        await refused(bob.client.send({ to: a, media: ref })); // not bob's
        await refused(alice.client.send({ to: b, media: { ...ref, size: 499 } }));
        await refused(alice.client.send({ to: b, media: { ...ref, mime: 'audio/mpeg' } }));
        const put = await alice.client.mediaPut({ mime: 'audio/ogg', size: 10 }); // never uploaded
        await refused(alice.client.send({ to: b, media: { id: put.media, mime: 'audio/ogg', size: 10 } }));
        expect((await alice.client.send({ to: b, media: ref })).seq).toBe(1);
      });
    });

    describe('over HTTP', () => {
      it('a wrong signature gets 403, for upload and download', async () => {
        const alice = await peer(node, uid('a'), 'json');
        const bytes = randomBytes(1000);
        const put = await alice.client.mediaPut({ mime: 'text/plain', size: bytes.length });
        const bad = await fetch(tamper(put.url), { method: 'PUT', headers: put.headers, body: bytes });
        expect(bad.status).toBe(403);
        await bad.arrayBuffer();
        expect(await fx.holds(node, put.media)).toBe(false);
        const good = await fetch(put.url, { method: 'PUT', headers: put.headers, body: bytes });
        expect(good.status).toBe(200);
        await good.arrayBuffer();
        const { url } = await alice.client.mediaGet(put.media);
        const res = await fetch(tamper(url));
        expect(res.status).toBe(403);
        await res.arrayBuffer();
        // a URL of another upload does not open this one
        const other = await alice.client.mediaPut({ mime: 'text/plain', size: 5 });
        const swapped = new URL(url);
        swapped.pathname = swapped.pathname.replace(put.media, other.media);
        const res2 = await fetch(swapped);
        expect(res2.status).toBe(403);
        await res2.arrayBuffer();
        const ok = await fetch(url);
        expect(ok.status).toBe(200);
        expect(ok.headers.get('content-type')).toBe('text/plain');
        expect(Buffer.from(await ok.arrayBuffer()).equals(bytes)).toBe(true);
      });

      it('an expired URL gets 403, for upload and download', async () => {
        const alice = await peer(node, uid('a'), 'json');
        const bytes = randomBytes(300);
        const late = await alice.client.mediaPut({ mime: 'text/plain', size: bytes.length });
        const ref = await alice.client.upload(bytes, { mime: 'text/plain' });
        const { url, expires } = await alice.client.mediaGet(ref.id);
        expect(expires).toBeLessThanOrEqual(Date.now() + URL_TTL + 1000);
        await sleep(Math.max(late.expires, expires) - Date.now() + 1100);
        const put = await fetch(late.url, { method: 'PUT', headers: late.headers, body: bytes });
        expect(put.status).toBe(403);
        await put.arrayBuffer();
        const get = await fetch(url);
        expect(get.status).toBe(403);
        await get.arrayBuffer();
        expect(await fx.holds(node, late.media)).toBe(false);
        // a fresh URL works
        expect(Buffer.from((await alice.client.download(ref.id)).data).equals(bytes)).toBe(true);
      });

      it('an upload of more or fewer bytes than declared is refused and leaves nothing', async () => {
        const alice = await peer(node, uid('a'), 'json');
        const bob = uid('b');
        // streamed past the declared size without a Content-Length
        const put = await alice.client.mediaPut({ mime: 'application/octet-stream', size: 1000 });
        const status = await streamPut(put.url, put.headers, 50_000);
        if (status !== 0) expect(status).toBeGreaterThanOrEqual(400);
        expect(status).toBeLessThan(500);
        // a Content-Length over the declared size
        const longer = await fetch(put.url, { method: 'PUT', headers: put.headers, body: randomBytes(1001) });
        expect(longer.status).toBeGreaterThanOrEqual(400);
        expect(longer.status).toBeLessThan(500);
        await longer.arrayBuffer();
        // fewer bytes
        const shorter = await fetch(put.url, { method: 'PUT', headers: put.headers, body: randomBytes(999) });
        expect(shorter.status).toBeGreaterThanOrEqual(400);
        expect(shorter.status).toBeLessThan(500);
        await shorter.arrayBuffer();
        await sleep(100);
        expect(await fx.holds(node, put.media)).toBe(false);
        expect((await node.node.store.media(put.media))?.completedAt).toBeUndefined();
        const err = await alice.client.send({ to: bob, media: { id: put.media, mime: 'application/octet-stream', size: 1000 } }).then(
          () => null,
          (e: unknown) => e as SwitchboardError,
        );
        expect(err?.code).toBe('bad_request');
        // another content type than the one signed is refused too
        const typed = await fetch(put.url, { method: 'PUT', headers: { 'content-type': 'text/html' }, body: randomBytes(1000) });
        expect(typed.status).toBe(403);
        await typed.arrayBuffer();
        expect(await fx.holds(node, put.media)).toBe(false);
      });

      it('an upload no message references is deleted after SB_MEDIA_ORPHAN_MS, bytes and record; a referenced one stays', async () => {
        const [a, b] = [uid('a'), uid('b')];
        const alice = await peer(node, a, 'json');
        const orphan = await alice.client.upload(randomBytes(2000), { mime: 'image/jpeg' });
        const kept = await alice.client.upload(randomBytes(2000), { mime: 'image/jpeg' });
        await alice.client.send({ to: b, media: kept });
        expect(await fx.holds(node, orphan.id)).toBe(true);
        await eventually(async () => {
          expect(await node.node.store.media(orphan.id)).toBeNull();
          expect(await fx.holds(node, orphan.id)).toBe(false);
        }, ORPHAN * 3);
        expect(await node.node.store.media(kept.id)).not.toBeNull();
        expect(await fx.holds(node, kept.id)).toBe(true);
        const err = await alice.client.mediaGet(orphan.id).then(() => null, (e: unknown) => e as SwitchboardError);
        expect(err?.code).toBe('not_found');
      }, 30_000);
    });
  });
}
