/**
 * What a firmware signature covers (docs/protocol.md, FIRMWARE_BEGIN): the vendor's
 * Ed25519 key signs
 *
 *   "DOCKSIDE-FW-V1" ‖ 0x00 ‖ model ‖ 0x00 ‖ version ‖ 0x00 ‖ sha256(image) (32 bytes)
 *
 * so an image signed for one model or version cannot be pushed as another.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

export function firmwareSigningMessage(model: string, version: string, sha256: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DOCKSIDE-FW-V1\0${model}\0${version}\0`, 'latin1'), sha256]);
}

export function firmwareSha256(image: Buffer): Buffer {
  return createHash('sha256').update(image).digest();
}

/** `vendorKeySpkiB64` is base64 DER SPKI, as in the camera profile's firmwarePublicKey. */
export function verifyFirmwareSignature(vendorKey: string | KeyObject, model: string, version: string, sha256: Buffer, signature: Buffer): boolean {
  const key = typeof vendorKey === 'string' ? createPublicKey({ key: Buffer.from(vendorKey, 'base64'), format: 'der', type: 'spki' }) : vendorKey;
  return signature.length === 64 && verify(null, firmwareSigningMessage(model, version, sha256), key, signature);
}
