/**
 * The camera's clip manifest (docs/custody.md §2). Written by the camera at record
 * time, signed with its Ed25519 device key, carried to the dock as exact bytes
 * (GET_MANIFEST) and kept in the sidecar, so the signature is always checked over
 * the very bytes the camera signed.
 *
 *   bytes     = canonicalJson(manifest)                       (includes "chain")
 *   chain     = SHA-256( prevChain(32) ‖ sha256(32) ‖ canonicalJson(manifest without "chain") )
 *   signature = Ed25519(device key, bytes)
 *
 * The first clip of a camera has prevChain = 64 zeros.
 */
import { createHash, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from './canonicalJson.js';
import { DockError } from '../errors.js';
import { rawEd25519PublicKey } from '../protocol/auth.js';
import { TRIGGERS } from '../protocol/messages.js';

export const MANIFEST_FORMAT = 'dockside-manifest-v1';
export const GENESIS_CHAIN = '0'.repeat(64);

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
const int = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const u32 = z.number().int().nonnegative().max(0xffffffff); // carried as u32 in LIST_CLIPS
const ascii = (max: number) => z.string().max(max).regex(/^[\x20-\x7e]*$/, 'must be printable ASCII');

export const ManifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    serial: z.string().regex(/^[A-Z0-9][A-Z0-9-]{2,31}$/),
    model: ascii(64),
    firmware: ascii(32),
    clipId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/),
    seq: u32.min(1),
    officerId: ascii(64),
    startMs: int,
    endMs: int,
    durationMs: u32,
    preEventS: int.max(600),
    trigger: z.enum(TRIGGERS),
    gps: z.strictObject({ latE7: z.number().int().min(-900000000).max(900000000), lonE7: z.number().int().min(-1800000000).max(1800000000), accuracyM: int.max(100000) }).nullable(),
    container: z.enum(['mp4', 'bin']),
    size: int,
    sha256: hex32,
    prevChain: hex32,
    chain: hex32,
  })
  .strict()
  .refine((m) => m.endMs >= m.startMs, { message: 'endMs must not be before startMs', path: ['endMs'] });

export type Manifest = z.infer<typeof ManifestSchema>;
export type UnchainedManifest = Omit<Manifest, 'chain'>;

export function computeChain(m: UnchainedManifest): string {
  const { chain: _ignored, ...rest } = m as Manifest;
  return createHash('sha256')
    .update(Buffer.from(m.prevChain, 'hex'))
    .update(Buffer.from(m.sha256, 'hex'))
    .update(canonicalJson(rest))
    .digest('hex');
}

/** Adds the chain value and returns the canonical bytes to sign and store. */
export function sealManifest(m: UnchainedManifest): { manifest: Manifest; bytes: Buffer } {
  const manifest: Manifest = { ...m, chain: computeChain(m) };
  return { manifest, bytes: Buffer.from(canonicalJson(manifest), 'ascii') };
}

export function signManifest(bytes: Buffer, privateKey: KeyObject): Buffer {
  return edSign(null, bytes, privateKey);
}

/**
 * Parses manifest bytes from a device. Refuses anything that is not exactly the
 * canonical encoding of a valid manifest whose chain value is right: the dock
 * never has to guess which bytes a signature was meant to cover.
 */
export function parseManifest(bytes: Buffer): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new DockError('CUSTODY_BAD_MANIFEST', 'manifest is not valid JSON');
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DockError('CUSTODY_BAD_MANIFEST', `manifest field ${issue.path.join('.') || '(root)'}: ${issue.message}`, { field: issue.path.join('.') });
  }
  const m = parsed.data;
  if (canonicalJson(m) !== bytes.toString('latin1')) throw new DockError('CUSTODY_BAD_MANIFEST', 'manifest bytes are not in canonical form (docs/custody.md §2.1)', { clipId: m.clipId });
  if (computeChain(m) !== m.chain) throw new DockError('CUSTODY_BAD_MANIFEST', `manifest chain value of clip ${m.clipId} does not match its fields`, { clipId: m.clipId });
  return m;
}

/** True when `signature` is the device key's Ed25519 signature over exactly `bytes`. */
export function verifyManifestSignature(bytes: Buffer, signature: Buffer, devicePublicKeyRaw: Buffer): boolean {
  if (signature.length !== 64) return false;
  const key = createPublicKey({ key: rawEd25519PublicKey(devicePublicKeyRaw), format: 'der', type: 'spki' });
  return edVerify(null, bytes, key, signature);
}
