// The protocol suite: the same cases against every link the machine offers
// (loopback always; serial over a socat pty with the real bindings in CI).
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { GENESIS_CHAIN, parseManifest, verifyManifestSignature } from '../../src/custody/manifest.js';
import { Session } from '../../src/protocol/Session.js';
import { firmwareSha256, firmwareSigningMessage } from '../../src/protocol/firmwareImage.js';
import { isDockError } from '../../src/errors.js';
import type { SimLinkKind } from '../../src/sim/SimFleet.js';
import { openLink, type LinkOptions, type LinkUnderTest } from './links.js';

const VENDOR_KEY = createPrivateKey(readFileSync(new URL('../../fixtures/keys/sim-vendor-firmware.key.pem', import.meta.url)));

export function protocolSuite(kind: SimLinkKind): void {
  describe(`protocol over ${kind}`, () => {
    let link: LinkUnderTest | undefined;
    let session: Session | undefined;
    afterEach(async () => {
      await session?.close().catch(() => undefined);
      await link?.cleanup();
      session = undefined;
      link = undefined;
    });
    const connect = async (options: LinkOptions = {}, sessionOptions = {}): Promise<Session> => {
      link = await openLink(kind, options);
      session = await Session.connect(link.dockTransport(), sessionOptions);
      return session;
    };

    it('negotiates HELLO: version, serial, the smaller payload and window', async () => {
      const s = await connect({}, { maxPayload: 32 * 1024, window: 4 });
      expect(s.info.version).toBe(1);
      expect(s.serial).toBe(link!.serial);
      expect(s.info.model).toBe('Sentinel BC4');
      expect(s.maxChunk).toBe(32 * 1024 - 12);
      expect(s.window).toBe(4);
    });

    it('keeps the window within maxInFlightBytes of full-size answers (default 2 MiB: 32 × 64 KiB)', async () => {
      expect((await connect()).window).toBe(32);
      await session!.close();
      await link!.cleanup();
      const s = await connect({}, { maxPayload: 64 * 1024, maxInFlightBytes: 256 * 1024 });
      expect(s.window).toBe(4);
    });

    it('authenticates the enrolled key and refuses any other', async () => {
      const s = await connect();
      expect((await s.authenticate(link!.publicKeyRaw)).equals(link!.publicKeyRaw)).toBe(true);
      const other = Buffer.alloc(32, 7);
      await expect(s.authenticate(other)).rejects.toMatchObject({ code: 'PROTO_AUTH' });
    });

    it('refuses a rogue camera that signs with a key other than the enrolled one', async () => {
      const s = await connect({ faults: 'rogue' });
      await expect(s.authenticate(link!.publicKeyRaw)).rejects.toMatchObject({ code: 'PROTO_AUTH', message: expect.stringContaining('not the one enrolled') });
    });

    it('reports STATUS: battery, storage, clock', async () => {
      const s = await connect({ clips: 2 });
      const st = await s.status();
      expect(st.batteryPct).toBeGreaterThanOrEqual(0);
      expect(st.batteryPct).toBeLessThanOrEqual(100);
      expect(st.unreleasedCount).toBe(2);
      expect(st.storageUsed).toBeGreaterThan(2 * 300_000);
      expect(st.storageTotal).toBeGreaterThan(st.storageUsed);
      expect(Math.abs(st.clockMs - Date.now())).toBeLessThan(5 * 60_000);
    });

    it('lists every clip across pages of one', async () => {
      const s = await connect({ clips: 5 });
      const all = await s.listClips();
      const paged = await s.listClips(1);
      expect(all.clips.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(paged.clips).toEqual(all.clips);
      expect(all.refused).toEqual([]);
    });

    it('pulls a clip whose bytes hash to its signed manifest, and the chain links clip to clip', async () => {
      const s = await connect({ clips: 3 });
      const { clips } = await s.listClips();
      let prev = GENESIS_CHAIN;
      for (const clip of clips) {
        const m = await s.request('GET_MANIFEST', { clipId: clip.id });
        const manifest = parseManifest(Buffer.from(m.manifest));
        expect(verifyManifestSignature(Buffer.from(m.manifest), Buffer.from(m.signature), link!.publicKeyRaw)).toBe(true);
        expect(manifest.prevChain).toBe(prev);
        prev = manifest.chain;
        const hash = createHash('sha256');
        let next = 0;
        await s.readRange(clip.id, 0, clip.size, (offset, data) => {
          expect(offset).toBe(next);
          next += data.length;
          hash.update(data);
        });
        expect(hash.digest('hex')).toBe(manifest.sha256);
      }
    });

    it('resumes a pull from an offset', async () => {
      const s = await connect({ clips: 1 });
      const [clip] = (await s.listClips()).clips;
      const full: Buffer[] = [];
      await s.readRange(clip!.id, 0, clip!.size, (_o, d) => void full.push(Buffer.from(d)));
      const tail: Buffer[] = [];
      await s.readRange(clip!.id, 123_457, clip!.size, (_o, d) => void tail.push(Buffer.from(d)));
      expect(Buffer.concat(tail).equals(Buffer.concat(full).subarray(123_457))).toBe(true);
    });

    it('releases a clip only for its manifest hash; a repeat is idempotent', async () => {
      const s = await connect({ clips: 2 });
      const [clip] = (await s.listClips()).clips;
      const manifest = parseManifest(Buffer.from((await s.request('GET_MANIFEST', { clipId: clip!.id })).manifest));
      await expect(s.request('RELEASE', { clipId: clip!.id, sha256: Buffer.alloc(32), receipt: 'x' })).rejects.toMatchObject({
        code: 'PROTO_REMOTE',
        details: { remote: 'HASH_MISMATCH' },
      });
      expect((await s.listClips()).clips).toHaveLength(2);
      const sha = Buffer.from(manifest.sha256, 'hex');
      expect(await s.request('RELEASE', { clipId: clip!.id, sha256: sha, receipt: 'vault:sha256:abc' })).toEqual({ released: true, freedBytes: clip!.size });
      expect(await s.request('RELEASE', { clipId: clip!.id, sha256: sha, receipt: 'vault:sha256:abc' })).toEqual({ released: true, freedBytes: 0 });
      expect((await s.listClips()).clips.map((c) => c.id)).not.toContain(clip!.id);
      const log = await s.getLog();
      expect(log.some((e) => e.message.startsWith(`RELEASE ${clip!.id}`) && e.message.includes('vault:sha256:abc'))).toBe(true);
    });

    it('sets the camera clock', async () => {
      const s = await connect();
      const target = Date.now() + 3_600_000;
      await s.request('SET_TIME', { utcMs: target });
      const st = await s.status();
      expect(Math.abs(st.clockMs - target)).toBeLessThan(2_000);
    });

    it('runs the self-test and reads the log in pages', async () => {
      const s = await connect({ clips: 2 });
      const st = await s.request('SELFTEST', {});
      expect(st.passed).toBe(true);
      expect(st.checks.map((c) => c.name)).toContain('flash');
      const log = await s.getLog();
      expect(log.length).toBeGreaterThan(2);
      expect(log.map((e) => e.seq)).toEqual([...log.map((e) => e.seq)].sort((a, b) => a - b));
    });

    it('echoes LINK_TEST payloads byte for byte with the full window in flight', async () => {
      const s = await connect();
      const payloads = Array.from({ length: 3 * s.window }, (_, i) => createHash('sha256').update(String(i)).digest().toString('hex').repeat(1000).slice(0, s.maxChunk - 8));
      const answers = await Promise.all(payloads.map((p) => s.request('LINK_TEST', { data: Buffer.from(p) })));
      answers.forEach((a, i) => expect(a.data.toString()).toBe(payloads[i]));
    });

    it('takes a signed firmware image, refuses a wrongly signed one before any chunk', async () => {
      const s = await connect();
      const image = createHash('sha512').update('firmware 4.3.0').digest().toString('hex').repeat(2000);
      const bytes = Buffer.from(image);
      const sha256 = firmwareSha256(bytes);
      const badSig = sign(null, firmwareSigningMessage('Sentinel BC4', '4.3.1', sha256), VENDOR_KEY); // signed for another version
      await expect(s.request('FIRMWARE_BEGIN', { version: '4.3.0', size: bytes.length, sha256, signature: badSig })).rejects.toMatchObject({ details: { remote: 'FIRMWARE_REJECTED' } });
      const signature = sign(null, firmwareSigningMessage('Sentinel BC4', '4.3.0', sha256), VENDOR_KEY);
      const { maxChunk } = await s.request('FIRMWARE_BEGIN', { version: '4.3.0', size: bytes.length, sha256, signature });
      for (let off = 0; off < bytes.length; off += maxChunk) await s.request('FIRMWARE_CHUNK', { offset: off, data: bytes.subarray(off, off + maxChunk) });
      expect((await s.request('FIRMWARE_COMMIT', {}, { timeoutMs: 30_000 })).version).toBe('4.3.0');
      await expect(s.status()).rejects.toMatchObject({ details: { remote: 'NOT_READY' } });
      expect((await s.hello()).firmware).toBe('4.3.0');
    });

    it('pulls every byte intact through bit errors, lost frames and stalls', async () => {
      const s = await connect({ clips: 2, faults: 'ber=1e-5,drop=0.02,stall=0.03', record: { mode: 'synthetic', syntheticBytes: 600_000 } }, { timeoutMs: 150, retries: 20 });
      const { clips } = await s.listClips();
      for (const clip of clips) {
        const manifest = parseManifest(Buffer.from((await s.request('GET_MANIFEST', { clipId: clip.id })).manifest));
        const hash = createHash('sha256');
        await s.readRange(clip.id, 0, clip.size, (_o, d) => void hash.update(d));
        expect(hash.digest('hex')).toBe(manifest.sha256);
      }
      expect(s.stats.retries).toBeGreaterThan(0);
      expect(s.stats.discarded + s.stats.gapResends + s.stats.timeouts).toBeGreaterThan(0);
    });

    it('fails a request to a camera that stops answering with PROTO_TIMEOUT, and keeps the session usable', async () => {
      const s = await connect({}, { timeoutMs: 50, retries: 2 });
      link!.camera.override('STATUS', () => new Promise(() => undefined)); // never answers
      const err = await s.status().catch((e: unknown) => e);
      expect(isDockError(err, 'PROTO_TIMEOUT')).toBe(true);
      expect((err as Error).message).toMatch(/did not answer STATUS after 3 attempts/);
      expect(s.stats.failed).toBe(1);
    });

    // Regression: bindings-cpp re-read a hung-up pty forever (0-byte reads), so over
    // serial only a resend's failed write ever noticed the camera had gone. The idle
    // timeout here is longer than the test may run: only hangup detection can pass it.
    it('reports the link going away as HAL_DISCONNECTED to every pending request, without waiting for a timeout', async () => {
      const s = await connect({}, { timeoutMs: 60_000, retries: 0 });
      link!.camera.override('STATUS', () => new Promise(() => undefined));
      const pending = s.status().catch((e: unknown) => e); // it rejects during undock()
      const gone = new Promise((r) => s.once('disconnected', r));
      await link!.fleet.undock(link!.serial);
      expect(await pending).toMatchObject({ code: 'HAL_DISCONNECTED' });
      await gone;
      await expect(s.status()).rejects.toMatchObject({ code: 'HAL_DISCONNECTED' });
    });
  });
}
