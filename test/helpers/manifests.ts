// A valid camera manifest for tests: every field filled, size and sha256 taken from
// the clip bytes; a test overrides only what it is about.
import { createHash } from 'node:crypto';
import { GENESIS_CHAIN, type UnchainedManifest } from '../../src/custody/manifest.js';

export function sampleManifest(clip: Buffer, over: Partial<UnchainedManifest> = {}): UnchainedManifest {
  return {
    format: 'dockside-manifest-v1',
    serial: 'BC4-0000TEST',
    model: 'Sentinel BC4',
    firmware: '4.2.1',
    clipId: '20261130T060000Z-000001',
    seq: 1,
    officerId: 'OFC-1234',
    startMs: 1_764_482_400_000,
    endMs: 1_764_482_403_000,
    durationMs: 3000,
    preEventS: 30,
    trigger: 'button',
    gps: { latE7: 389_000_000, lonE7: -770_300_000, accuracyM: 5 },
    container: 'mp4',
    size: clip.length,
    sha256: createHash('sha256').update(clip).digest('hex'),
    prevChain: GENESIS_CHAIN,
    ...over,
  };
}
