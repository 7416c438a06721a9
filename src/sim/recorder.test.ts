import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GENESIS_CHAIN, parseManifest, verifyManifestSignature, type Manifest } from '../custody/manifest.js';
import { probe } from '../media.js';
import { Flash, type NewCameraIdentity, type StoredClip } from './Flash.js';
import { recordClips, type RecordOptions } from './recorder.js';

const NO_RECORD_FAULTS = { corrupt: 0, tamper: 0, gap: 0 };
const SMALL_VIDEO = { durationS: 1, width: 160, height: 96, fps: 10 };

let root: string;
const opened: Flash[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-recorder-'));
});

afterEach(async () => {
  for (const f of opened.splice(0)) await f.close().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

function newFlash(name: string, seed = 9, serial = 'BC4-REC00001'): Flash {
  const identity: NewCameraIdentity = {
    serial,
    model: 'Sentinel BC4',
    vendor: 'Sentinel',
    hardware: 'rev C',
    firmware: '4.2.1',
    officerId: 'OFC-4321',
    seed,
    createdMs: Date.UTC(2026, 0, 1),
    clockOffsetMs: 0,
    clockSetAtMs: Date.UTC(2026, 0, 1),
    driftPpm: 0,
    batteryPct: 50,
  };
  const flash = Flash.create(join(root, name), identity);
  opened.push(flash);
  return flash;
}

function synthetic(count: number, faults = NO_RECORD_FAULTS, syntheticBytes = 2048): RecordOptions {
  return { count, mode: 'synthetic', syntheticBytes, video: {}, faults };
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const hashMatches = (c: StoredClip): boolean => sha256(c.path) === c.manifest.sha256;
const signatureValid = (flash: Flash, c: StoredClip): boolean => verifyManifestSignature(c.manifestBytes, c.signature, flash.publicKeyRaw);

/** Indices i where clip i does not link to clip i-1 (or, for i = 0, to the genesis value). */
function chainBreaks(manifests: Manifest[]): number[] {
  return manifests.flatMap((m, i) => (m.prevChain === (i === 0 ? GENESIS_CHAIN : manifests[i - 1]!.chain) ? [] : [i]));
}

describe('recordClips', () => {
  it('makes real H.264 + AAC MP4 clips whose bytes hash to their signed manifests', async () => {
    const flash = newFlash('cam');
    const ids = await recordClips(flash, { count: 2, mode: 'mp4', syntheticBytes: 0, video: SMALL_VIDEO, faults: NO_RECORD_FAULTS });
    expect(ids).toHaveLength(2);
    for (const c of flash.clips()) {
      expect(c.path.endsWith('.mp4')).toBe(true);
      expect(c.manifest.container).toBe('mp4');
      const media = await probe(c.path);
      expect(media.container).toContain('mp4');
      expect(media.videoCodec).toBe('h264');
      expect(media.audioCodec).toBe('aac');
      expect(media.width).toBe(160);
      expect(media.height).toBe(96);
      expect(Math.abs(media.durationS * 1000 - c.manifest.durationMs)).toBeLessThanOrEqual(250);
      expect(c.manifest.size).toBe(statSync(c.path).size);
      expect(sha256(c.path)).toBe(c.manifest.sha256);
      expect(signatureValid(flash, c)).toBe(true);
    }
  });

  it('makes byte-identical MP4 clips, manifests, keys and signatures from the same seed and serial', async () => {
    // The second clip's manifest depends on the first's chain: two clips cover that too.
    const options: RecordOptions = { count: 2, mode: 'mp4', syntheticBytes: 0, video: { ...SMALL_VIDEO, width: 96, height: 64 }, faults: NO_RECORD_FAULTS };
    const a = newFlash('a');
    const b = newFlash('b');
    expect(await recordClips(a, options)).toEqual(await recordClips(b, options));
    const [ca, cb] = [a.clips(), b.clips()];
    expect(ca.map((c) => sha256(c.path))).toEqual(cb.map((c) => sha256(c.path)));
    // A manifest holds nothing that depends on the device key: the bytes are the same.
    expect(ca.map((c) => c.manifestBytes.toString())).toEqual(cb.map((c) => c.manifestBytes.toString()));
    // The device key follows from seed and serial, and Ed25519 is deterministic.
    expect(a.publicKeyRaw.equals(b.publicKeyRaw)).toBe(true);
    ca.forEach((c, i) => {
      expect(c.signature.equals(cb[i]!.signature)).toBe(true);
      expect(signatureValid(a, c)).toBe(true);
    });
    // Another camera of the same seed has a key of its own.
    const other = newFlash('c', 9, 'BC4-REC00002');
    expect(other.publicKeyRaw.equals(a.publicKeyRaw)).toBe(false);
    expect(verifyManifestSignature(ca[0]!.manifestBytes, ca[0]!.signature, other.publicKeyRaw)).toBe(false);
  });

  it('makes different clips for a different seed', async () => {
    const a = newFlash('a', 9);
    const b = newFlash('b', 10);
    await recordClips(a, synthetic(2));
    await recordClips(b, synthetic(2));
    expect(a.clips().map((c) => c.manifest.startMs)).not.toEqual(b.clips().map((c) => c.manifest.startMs));
  });

  it('makes synthetic clips of the requested size, deterministic from the seed', async () => {
    const a = newFlash('a');
    const b = newFlash('b');
    await recordClips(a, synthetic(3, NO_RECORD_FAULTS, 12_345));
    await recordClips(b, synthetic(3, NO_RECORD_FAULTS, 12_345));
    for (const c of a.clips()) {
      expect(c.path.endsWith('.bin')).toBe(true);
      expect(c.manifest.container).toBe('bin');
      expect(statSync(c.path).size).toBe(12_345);
      expect(c.manifest.size).toBe(12_345);
      expect(hashMatches(c)).toBe(true);
    }
    expect(a.clips().map((c) => c.manifestBytes.toString())).toEqual(b.clips().map((c) => c.manifestBytes.toString()));
    // Each clip has its own content.
    expect(new Set(a.clips().map((c) => c.manifest.sha256)).size).toBe(3);
  });

  it('links every clip into one hash chain from the genesis value, across recordings, each manifest valid and signed', async () => {
    const flash = newFlash('cam');
    const first = await recordClips(flash, synthetic(3));
    const second = await recordClips(flash, synthetic(2));
    const clips = flash.clips();
    expect(clips.map((c) => c.manifest.clipId)).toEqual([...first, ...second]);
    expect(clips.map((c) => c.manifest.seq)).toEqual([1, 2, 3, 4, 5]);
    for (const c of clips) {
      expect(parseManifest(c.manifestBytes)).toEqual(c.manifest);
      expect(signatureValid(flash, c)).toBe(true);
      expect(c.manifest.serial).toBe('BC4-REC00001');
    }
    expect(clips[0]!.manifest.prevChain).toBe(GENESIS_CHAIN);
    expect(chainBreaks(clips.map((c) => c.manifest))).toEqual([]);
    expect(flash.identity.lastSeq).toBe(5);
    expect(flash.identity.lastChain).toBe(clips[4]!.manifest.chain);
  });

  // Regression: a second recordClips() derives its start time from the seed alone, so
  // clip 4 can start before clip 3 (even before clip 1) although its seq is later.
  it('starts each recording after the previous one ended, also across recordings', async () => {
    const flash = newFlash('cam');
    await recordClips(flash, synthetic(3));
    await recordClips(flash, synthetic(3));
    const ms = flash.clips().map((c) => c.manifest);
    for (let i = 1; i < ms.length; i++) expect(ms[i]!.startMs, `clip seq ${ms[i]!.seq}`).toBeGreaterThanOrEqual(ms[i - 1]!.endMs);
  });

  describe('planted record-time faults', () => {
    const faults = { corrupt: 2, tamper: 2, gap: 2 };

    it('corrupt: the bytes no longer hash to the manifest, whose signature is still valid', async () => {
      const flash = newFlash('cam');
      await recordClips(flash, synthetic(6, { ...NO_RECORD_FAULTS, corrupt: 2 }));
      const { corrupt } = flash.identity.planted;
      expect(corrupt).toHaveLength(2);
      for (const c of flash.clips()) {
        expect(parseManifest(c.manifestBytes)).toEqual(c.manifest);
        expect(signatureValid(flash, c)).toBe(true);
        expect(hashMatches(c)).toBe(!corrupt.includes(c.manifest.clipId));
        expect(statSync(c.path).size).toBe(c.manifest.size);
      }
    });

    it('tamper: the bytes hash to a canonical, self-consistent manifest whose signature fails', async () => {
      const flash = newFlash('cam');
      await recordClips(flash, synthetic(6, { ...NO_RECORD_FAULTS, tamper: 2 }));
      const { tamper } = flash.identity.planted;
      expect(tamper).toHaveLength(2);
      for (const c of flash.clips()) {
        expect(parseManifest(c.manifestBytes)).toEqual(c.manifest);
        expect(hashMatches(c)).toBe(true);
        expect(signatureValid(flash, c)).toBe(!tamper.includes(c.manifest.clipId));
      }
      // It survives a reopen as it is.
      const again = Flash.open(flash.dir);
      opened.push(again);
      for (const id of tamper) expect(signatureValid(again, again.clip(id)!)).toBe(false);
    });

    it('gap: the clips are gone from flash and the chain breaks where they were', async () => {
      const flash = newFlash('cam');
      const ids = await recordClips(flash, synthetic(8, { ...NO_RECORD_FAULTS, gap: 2 }));
      const { gap } = flash.identity.planted;
      expect(gap).toHaveLength(2);
      const listed = flash.clips();
      expect(listed).toHaveLength(6);
      expect(listed.map((c) => c.manifest.clipId)).toEqual(ids.filter((id) => !gap.includes(id)));
      for (const id of gap) expect(existsSync(flash.clipPath(id, 'bin'))).toBe(false);
      for (const c of listed) {
        expect(hashMatches(c)).toBe(true);
        expect(signatureValid(flash, c)).toBe(true);
      }
      // A clip breaks the chain exactly where the seq before it is missing.
      const manifests = listed.map((c) => c.manifest);
      const seqSkips = manifests.flatMap((m, i) => (m.seq !== (i === 0 ? 1 : manifests[i - 1]!.seq + 1) ? [i] : []));
      expect(seqSkips.length).toBeGreaterThan(0);
      expect(chainBreaks(manifests)).toEqual(seqSkips);
    });

    it('names the planted clips in the identity: disjoint, recorded, and the same for the same seed', async () => {
      const a = newFlash('a');
      const b = newFlash('b');
      const other = newFlash('other', 21);
      const ids = await recordClips(a, synthetic(10, faults));
      await recordClips(b, synthetic(10, faults));
      const otherIds = await recordClips(other, synthetic(10, faults));
      const { corrupt, tamper, gap } = a.identity.planted;
      expect([corrupt.length, tamper.length, gap.length]).toEqual([2, 2, 2]);
      const all = [...corrupt, ...tamper, ...gap];
      expect(new Set(all).size).toBe(6);
      for (const id of all) expect(ids).toContain(id);
      expect(b.identity.planted).toEqual(a.identity.planted);
      // Another seed plants other positions.
      const positions = (p: { corrupt: string[]; tamper: string[]; gap: string[] }, list: string[]): number[] => [...p.corrupt, ...p.tamper, ...p.gap].map((id) => list.indexOf(id));
      expect(positions(other.identity.planted, otherIds)).not.toEqual(positions(a.identity.planted, ids));
      // Planting is logged, and survives a reopen.
      const log = (await a.readLog(0, 100)).map((e) => e.message);
      for (const id of corrupt) expect(log).toContain(`FAULT corrupt: ${id} stored bytes rotted after hashing`);
      for (const id of tamper) expect(log).toContain(`FAULT tamper: ${id} altered after signing`);
      for (const id of gap) expect(log).toContain(`FAULT gap: ${id} removed from flash`);
      await a.close();
      const again = Flash.open(a.dir);
      opened.push(again);
      expect(again.identity.planted).toEqual({ corrupt, tamper, gap });
    });

    it('each planted clip fails exactly the check its fault is about', async () => {
      const flash = newFlash('cam');
      await recordClips(flash, synthetic(10, faults));
      const { corrupt, tamper } = flash.identity.planted;
      for (const c of flash.clips()) {
        const id = c.manifest.clipId;
        expect({ id, hash: hashMatches(c), signature: signatureValid(flash, c) }).toEqual({ id, hash: !corrupt.includes(id), signature: !tamper.includes(id) });
      }
    });
  });
});
