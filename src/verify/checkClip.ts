/**
 * Every check a clip must pass before it may be stored (docs/custody.md §4). Pure:
 * the caller supplies what was measured, this decides.
 *
 *   manifest  the exact bytes parse as a canonical manifest whose chain value is right,
 *             and name this camera, this clip and this size
 *   hash      the spooled bytes, re-read from disk after fsync, hash to the manifest's
 *             sha256, and so did the bytes as they arrived
 *   signature the enrolled device key signed exactly those manifest bytes
 *   chain     prevChain continues the last chain value seen from this camera
 *             (a break is reported, the clip is still ingested: what is there is kept)
 */
import { GENESIS_CHAIN, parseManifest, verifyManifestSignature, type Manifest } from '../custody/manifest.js';
import { isDockError } from '../errors.js';

export interface ClipEvidence {
  serial: string;
  clipId: string;
  size: number; // as listed by the camera
  manifestBytes: Buffer | null;
  signature: Buffer | null;
  enrolledKey: Buffer; // raw Ed25519
  diskSha256: string; // recomputed from the spool file
  diskBytes: number;
  receivedSha256: string; // computed while the bytes arrived
  lastChain: string | null; // last chain value recorded for this camera, null if none yet
}

export type Verdict =
  | { ok: true; manifest: Manifest; chainGap: { expected: string; found: string } | undefined }
  | { ok: false; reason: string; check: 'manifest' | 'hash' | 'signature'; manifest: Manifest | undefined };

export function checkClip(e: ClipEvidence): Verdict {
  if (!e.manifestBytes || !e.signature) return { ok: false, check: 'manifest', reason: 'the camera sent no manifest for this clip', manifest: undefined };
  let m: Manifest;
  try {
    m = parseManifest(e.manifestBytes);
  } catch (err) {
    return { ok: false, check: 'manifest', reason: isDockError(err) ? err.message : String(err), manifest: undefined };
  }
  if (m.serial !== e.serial || m.clipId !== e.clipId) {
    return { ok: false, check: 'manifest', reason: `manifest names ${m.serial}/${m.clipId}, but the clip was listed as ${e.serial}/${e.clipId}`, manifest: m };
  }
  if (m.size !== e.size || e.diskBytes !== m.size) {
    return { ok: false, check: 'hash', reason: `size mismatch: manifest ${m.size} bytes, listed ${e.size}, spooled ${e.diskBytes}`, manifest: m };
  }
  if (e.diskSha256 !== m.sha256) {
    return { ok: false, check: 'hash', reason: `the spooled bytes hash to ${e.diskSha256}, not the manifest's ${m.sha256}`, manifest: m };
  }
  if (e.receivedSha256 !== e.diskSha256) {
    return { ok: false, check: 'hash', reason: `the bytes hashed to ${e.receivedSha256} as they arrived but ${e.diskSha256} on disk: the spool disk changed them`, manifest: m };
  }
  if (!verifyManifestSignature(e.manifestBytes, e.signature, e.enrolledKey)) {
    return { ok: false, check: 'signature', reason: "the manifest's Ed25519 signature does not verify with the camera's enrolled key", manifest: m };
  }
  const expected = e.lastChain ?? GENESIS_CHAIN;
  const chainGap = m.prevChain === expected ? undefined : { expected, found: m.prevChain };
  return { ok: true, manifest: m, chainGap };
}
