/**
 * The sidecar that travels with every stored clip (docs/custody.md §5), so a third
 * party can verify a clip from the vault alone, with sha256sum, jq and openssl:
 *
 *   jq -j .manifestCanonical X.json > signed.bin       the exact bytes the camera signed
 *   jq -r .signature X.json | base64 -d > sig.bin      its Ed25519 signature
 *   jq -r .devicePublicKeyPem X.json > device.pem      the camera's enrolled key
 *   openssl pkeyutl -verify -pubin -inkey device.pem -rawin -in signed.bin -sigfile sig.bin
 *   sha256sum X.mp4                                    equals .manifest.sha256
 */
import type { KeyObject } from 'node:crypto';
import type { Manifest } from './manifest.js';
import { rawEd25519PublicKey, spkiToRawEd25519 } from '../protocol/auth.js';
import { createHash, createPublicKey } from 'node:crypto';
import type { LedgerEntry } from './Ledger.js';

export const SIDECAR_FORMAT = 'dockside-sidecar-v1';

export interface Sidecar {
  format: typeof SIDECAR_FORMAT;
  clip: { serial: string; clipId: string; file: string; size: number; sha256: string };
  manifest: Manifest;
  manifestCanonical: string; // exactly the bytes the camera signed (ASCII)
  signature: string; // base64, 64 bytes
  devicePublicKeyPem: string;
  dock: { publicKeyPem: string; fingerprint: string };
  receipt: { location: string; sha256: string; receipt: string } | null;
  custody: LedgerEntry[]; // this clip's ledger lines, in order
}

export function devicePem(raw: Buffer): string {
  return createPublicKey({ key: rawEd25519PublicKey(raw), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }) as string;
}

export function buildSidecar(args: {
  manifest: Manifest;
  manifestBytes: Buffer;
  signature: Buffer;
  devicePublicKeyRaw: Buffer;
  dockPublicKey: KeyObject;
  dockFingerprint: string;
  receipt: Sidecar['receipt'];
  custodyLines: string[];
}): Buffer {
  const m = args.manifest;
  const sidecar: Sidecar = {
    format: SIDECAR_FORMAT,
    clip: { serial: m.serial, clipId: m.clipId, file: `${m.clipId}.${m.container}`, size: m.size, sha256: m.sha256 },
    manifest: m,
    manifestCanonical: args.manifestBytes.toString('latin1'),
    signature: args.signature.toString('base64'),
    devicePublicKeyPem: devicePem(args.devicePublicKeyRaw),
    dock: { publicKeyPem: args.dockPublicKey.export({ type: 'spki', format: 'pem' }) as string, fingerprint: args.dockFingerprint },
    receipt: args.receipt,
    custody: args.custodyLines.map((l) => JSON.parse(l) as LedgerEntry),
  };
  return Buffer.from(`${JSON.stringify(sidecar, null, 2)}\n`);
}

/** The raw 32-byte key of an Ed25519 public key in SPKI PEM (a sidecar's device or dock key); throws if it is not one. */
export function rawEd25519FromPem(pem: string): Buffer {
  return spkiToRawEd25519(createPublicKey(pem).export({ type: 'spki', format: 'der' }));
}

/** A key fingerprint (docs/custody.md §1): SHA-256 of the raw 32-byte Ed25519 key, hex. */
export function keyFingerprint(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex');
}

/** Why a parsed JSON document is not a sidecar this version can read, or undefined if it is one. */
export function sidecarShapeProblem(doc: unknown): string | undefined {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return 'not a JSON object';
  const sc = doc as Partial<Record<keyof Sidecar, unknown>>;
  if (sc.format !== SIDECAR_FORMAT) return `format is ${JSON.stringify(sc.format)}, not "${SIDECAR_FORMAT}"`;
  const clip = sc.clip as Partial<Record<keyof Sidecar['clip'], unknown>> | null | undefined;
  if (!clip || typeof clip !== 'object' || typeof clip.serial !== 'string' || typeof clip.clipId !== 'string' || typeof clip.file !== 'string' || typeof clip.size !== 'number' || typeof clip.sha256 !== 'string') return 'clip {serial, clipId, file, size, sha256} is missing or has a member of the wrong type';
  for (const k of ['manifestCanonical', 'signature', 'devicePublicKeyPem'] as const) if (typeof sc[k] !== 'string') return `${k} is missing or not a string`;
  const dock = sc.dock as Partial<Record<keyof Sidecar['dock'], unknown>> | null | undefined;
  if (!dock || typeof dock !== 'object' || typeof dock.publicKeyPem !== 'string' || typeof dock.fingerprint !== 'string') return 'dock {publicKeyPem, fingerprint} is missing or has a member of the wrong type';
  if (!sc.manifest || typeof sc.manifest !== 'object') return 'manifest is missing or not an object';
  if (!Array.isArray(sc.custody)) return 'custody is missing or not an array';
  return undefined;
}
