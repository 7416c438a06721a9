import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_CHAIN, sealManifest, signManifest, type Manifest, type UnchainedManifest } from '../custody/manifest.js';
import { recordTestClip } from '../media.js';
import { sampleManifest } from '../../test/helpers/manifests.js';
import { spkiToRawEd25519 } from '../protocol/auth.js';
import { checkClip, type ClipEvidence, type Verdict } from './checkClip.js';
import { DURATION_TOLERANCE_MS, mediaCheck } from './mediaCheck.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const SERIAL = 'BC4-CHECK001';

const device = generateKeyPairSync('ed25519');
const deviceRaw = spkiToRawEd25519(device.publicKey.export({ type: 'spki', format: 'der' }));
const rogue = generateKeyPairSync('ed25519');

const clip1 = Buffer.from('first clip bytes '.repeat(100));
const clip2 = Buffer.from('second clip bytes '.repeat(90));

function unchained(seq: number, bytes: Buffer, prevChain: string, over: Partial<UnchainedManifest> = {}): UnchainedManifest {
  return sampleManifest(bytes, {
    serial: SERIAL,
    clipId: `20261130T06000${seq}Z-00000${seq}`,
    seq,
    startMs: 1_764_482_400_000 + seq * 10_000,
    endMs: 1_764_482_403_000 + seq * 10_000,
    gps: null,
    container: 'bin',
    prevChain,
    ...over,
  });
}

const m1 = sealManifest(unchained(1, clip1, GENESIS_CHAIN));
const m2 = sealManifest(unchained(2, clip2, m1.manifest.chain));
const sig1 = signManifest(m1.bytes, device.privateKey);
const sig2 = signManifest(m2.bytes, device.privateKey);

/** The evidence for clip 2, arriving cleanly after clip 1 was seen. */
function evidence(over: Partial<ClipEvidence> = {}): ClipEvidence {
  return {
    serial: SERIAL,
    clipId: m2.manifest.clipId,
    size: clip2.length,
    manifestBytes: m2.bytes,
    signature: sig2,
    enrolledKey: deviceRaw,
    diskSha256: sha(clip2),
    diskBytes: clip2.length,
    receivedSha256: sha(clip2),
    lastChain: m1.manifest.chain,
    ...over,
  };
}

function failure(v: Verdict): { check: string; reason: string; manifest: Manifest | undefined } {
  expect(v.ok, JSON.stringify(v)).toBe(false);
  if (v.ok) throw new Error('unreachable');
  return v;
}

describe('checkClip', () => {
  it('a clean clip that continues the chain passes with no gap', () => {
    const v = checkClip(evidence());
    expect(v).toEqual({ ok: true, manifest: m2.manifest, chainGap: undefined });
  });

  it('the first clip of a camera starts at genesis: no gap when nothing was seen yet', () => {
    const v = checkClip(evidence({ clipId: m1.manifest.clipId, size: clip1.length, manifestBytes: m1.bytes, signature: sig1, diskSha256: sha(clip1), diskBytes: clip1.length, receivedSha256: sha(clip1), lastChain: null }));
    expect(v).toEqual({ ok: true, manifest: m1.manifest, chainGap: undefined });
  });

  it('a camera seen before whose clip restarts at genesis is a gap', () => {
    const restart = sealManifest(unchained(2, clip2, GENESIS_CHAIN));
    const v = checkClip(evidence({ manifestBytes: restart.bytes, signature: signManifest(restart.bytes, device.privateKey) }));
    expect(v).toEqual({ ok: true, manifest: restart.manifest, chainGap: { expected: m1.manifest.chain, found: GENESIS_CHAIN } });
  });

  it('a chain gap (clip 1 never seen) is reported, and the clip still passes', () => {
    const v = checkClip(evidence({ lastChain: null }));
    expect(v).toEqual({ ok: true, manifest: m2.manifest, chainGap: { expected: GENESIS_CHAIN, found: m1.manifest.chain } });
    const v2 = checkClip(evidence({ lastChain: 'ab'.repeat(32) }));
    expect(v2.ok && v2.chainGap).toEqual({ expected: 'ab'.repeat(32), found: m1.manifest.chain });
  });

  it('no manifest or no signature', () => {
    expect(failure(checkClip(evidence({ manifestBytes: null }))).check).toBe('manifest');
    const f = failure(checkClip(evidence({ signature: null })));
    expect(f).toMatchObject({ check: 'manifest', manifest: undefined });
    expect(f.reason).toMatch(/no manifest/);
  });

  it('a bad manifest: not JSON, not canonical, a wrong chain value, a bad field', () => {
    const notJson = failure(checkClip(evidence({ manifestBytes: Buffer.from('{"format":') })));
    expect(notJson).toMatchObject({ check: 'manifest', manifest: undefined });
    expect(notJson.reason).toMatch(/not valid JSON/);

    const spaced = Buffer.from(JSON.stringify(m2.manifest, null, 1));
    expect(failure(checkClip(evidence({ manifestBytes: spaced, signature: signManifest(spaced, device.privateKey) }))).reason).toMatch(/canonical form/);

    const wrongChain = Buffer.from(m2.bytes.toString().replace(m2.manifest.chain, 'cd'.repeat(32)));
    expect(failure(checkClip(evidence({ manifestBytes: wrongChain, signature: signManifest(wrongChain, device.privateKey) }))).reason).toMatch(/chain value/);

    const badField = sealManifest(unchained(2, clip2, m1.manifest.chain, { sha256: 'XYZ' }));
    const f = failure(checkClip(evidence({ manifestBytes: badField.bytes, signature: signManifest(badField.bytes, device.privateKey) })));
    expect(f.check).toBe('manifest');
    expect(f.reason).toMatch(/sha256/);
  });

  it('a manifest of another camera or another clip', () => {
    const otherCam = failure(checkClip(evidence({ serial: 'BC4-OTHER001' })));
    expect(otherCam).toMatchObject({ check: 'manifest', manifest: m2.manifest });
    expect(otherCam.reason).toMatch(/listed as BC4-OTHER001/);
    const otherClip = failure(checkClip(evidence({ clipId: m1.manifest.clipId })));
    expect(otherClip.check).toBe('manifest');
    expect(otherClip.reason).toMatch(new RegExp(`names ${SERIAL}/${m2.manifest.clipId}`));
  });

  it('a size mismatch: listed, or spooled', () => {
    const listed = failure(checkClip(evidence({ size: clip2.length + 1 })));
    expect(listed).toMatchObject({ check: 'hash', manifest: m2.manifest });
    expect(listed.reason).toMatch(/size mismatch/);
    const spooled = failure(checkClip(evidence({ diskBytes: clip2.length - 1 })));
    expect(spooled.check).toBe('hash');
    expect(spooled.reason).toMatch(new RegExp(`spooled ${clip2.length - 1}`));
  });

  it("a hash mismatch: the spooled bytes are not the manifest's", () => {
    const rotted = Buffer.from(clip2);
    rotted.writeUInt8(rotted.readUInt8(7) ^ 1, 7);
    const f = failure(checkClip(evidence({ diskSha256: sha(rotted), receivedSha256: sha(rotted) })));
    expect(f).toMatchObject({ check: 'hash', manifest: m2.manifest });
    expect(f.reason).toMatch(/not the manifest's/);
  });

  it('received != disk: the bytes arrived right but the spool disk changed them', () => {
    const f = failure(checkClip(evidence({ receivedSha256: 'ee'.repeat(32) })));
    expect(f).toMatchObject({ check: 'hash', manifest: m2.manifest });
    expect(f.reason).toMatch(/the spool disk changed them/);
    expect(failure(checkClip(evidence({ receivedSha256: '' }))).check).toBe('hash');
  });

  it('a bad signature: another key, a changed signature, a truncated signature, a signature over other bytes', () => {
    const cases: Partial<ClipEvidence>[] = [
      { signature: signManifest(m2.bytes, rogue.privateKey) },
      { signature: Buffer.from(sig2.map((b, i) => (i === 10 ? b ^ 1 : b))) },
      { signature: sig2.subarray(0, 63) },
      { signature: sig1 },
      { enrolledKey: spkiToRawEd25519(rogue.publicKey.export({ type: 'spki', format: 'der' })) },
    ];
    for (const c of cases) {
      const f = failure(checkClip(evidence(c)));
      expect(f).toMatchObject({ check: 'signature', manifest: m2.manifest });
      expect(f.reason).toMatch(/signature does not verify/);
    }
  });

  it('a tampered clip whose manifest was forged to match fails on the signature', () => {
    const tampered = Buffer.from('not what was recorded');
    const forged = sealManifest(unchained(2, tampered, m1.manifest.chain));
    const f = failure(
      checkClip(evidence({ size: tampered.length, manifestBytes: forged.bytes, signature: sig2, diskSha256: sha(tampered), diskBytes: tampered.length, receivedSha256: sha(tampered) })),
    );
    expect(f.check).toBe('signature');
  });
});

describe('mediaCheck', () => {
  let root: string;
  let mp4: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dockside-media-'));
    mp4 = join(root, 'clip.mp4');
    await recordTestClip(mp4, { serial: SERIAL, startMs: 1_764_482_400_000, durationS: 1, width: 64, height: 48, fps: 5 });
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  const asMp4 = (durationMs: number): Manifest => ({ ...m2.manifest, container: 'mp4', durationMs });

  it('a bin clip is not probed', async () => {
    expect(await mediaCheck(join(root, 'does-not-exist.bin'), m2.manifest)).toEqual({ ok: true, detail: 'bin: no media check for this container' });
  });

  it('a playable mp4 of the signed length passes; one far off the signed length is flagged', async () => {
    const good = await mediaCheck(mp4, asMp4(1000));
    expect(good.ok, good.detail).toBe(true);
    expect(good.detail).toMatch(/^mp4 h264\/aac 1\.\d\d s$/);
    const off = await mediaCheck(mp4, asMp4(1000 + DURATION_TOLERANCE_MS + 1000));
    expect(off.ok).toBe(false);
    expect(off.detail).toMatch(/manifest says 3\.50 s/);
  });

  it('bytes that are not media are flagged, not thrown', async () => {
    const junk = join(root, 'junk.mp4');
    writeFileSync(junk, Buffer.alloc(4096, 0x5a));
    const f = await mediaCheck(junk, asMp4(1000));
    expect(f.ok).toBe(false);
    expect(f.detail).toMatch(/ffprobe cannot read it/);
  });
});
