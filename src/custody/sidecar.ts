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
import { rawEd25519PublicKey } from '../protocol/auth.js';
import { createPublicKey } from 'node:crypto';
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
