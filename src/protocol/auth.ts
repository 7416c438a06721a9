/**
 * AUTH challenge (docs/protocol.md §5.2). The camera signs, with its Ed25519 device
 * key, the bytes
 *
 *   "DOCKSIDE-AUTH-V1" ‖ 0x00 ‖ serial (ASCII) ‖ 0x00 ‖ nonce (32 bytes)
 *
 * Binding the serial stops a camera from replaying another camera's answer; the
 * domain prefix stops the signature from being reused as a manifest signature.
 */
import { DockError } from '../errors.js';

const PREFIX = Buffer.from('DOCKSIDE-AUTH-V1\0', 'latin1');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function authMessage(serial: string, nonce: Buffer): Buffer {
  return Buffer.concat([PREFIX, Buffer.from(serial, 'latin1'), Buffer.from([0]), nonce]);
}

/** Wraps a raw 32-byte Ed25519 public key as DER SubjectPublicKeyInfo for node:crypto. */
export function rawEd25519PublicKey(raw: Buffer): Buffer {
  if (raw.length !== 32) throw new DockError('PROTO_AUTH', `an Ed25519 public key is 32 bytes, got ${raw.length}`);
  return Buffer.concat([SPKI_ED25519_PREFIX, raw]);
}

/** The raw 32 bytes of an Ed25519 public key given as DER SPKI. */
export function spkiToRawEd25519(spki: Buffer): Buffer {
  if (spki.length !== 44 || !spki.subarray(0, 12).equals(SPKI_ED25519_PREFIX)) throw new DockError('PROTO_AUTH', 'not an Ed25519 SubjectPublicKeyInfo');
  return Buffer.from(spki.subarray(12));
}
