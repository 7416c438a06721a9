/**
 * A signed firmware package, as a vendor ships it and `dockside firmware` pushes it:
 *
 *   DOCKSIDE-FW-PKG-V1\n
 *   {"model":"Sentinel BC4","version":"4.3.0","size":N,"sha256":"<hex>","signature":"<base64>"}\n
 *   <N image bytes>
 *
 * The signature is the vendor's Ed25519 signature over the firmware signature message
 * (firmwareImage.ts, docs/protocol.md §5.12). The dock checks the package against the
 * vendor key of the camera's model profile before it sends a single byte: a package
 * that is unsigned, truncated, for another model or wrongly signed never reaches a
 * camera. The camera checks it again (it is the camera's key that counts).
 */
import { sign, type KeyObject } from 'node:crypto';
import { DockError } from '../errors.js';
import { firmwareSha256, verifyFirmwareSignature } from './firmwareImage.js';

export const FIRMWARE_PACKAGE_MAGIC = 'DOCKSIDE-FW-PKG-V1\n';
const MAX_HEADER = 4096;
export const MAX_FIRMWARE_BYTES = 64 * 1024 * 1024;
const PRINTABLE = /^[\x20-\x7e]{1,32}$/;

export interface FirmwarePackage {
  model: string;
  version: string;
  sha256: Buffer;
  signature: Buffer;
  image: Buffer;
}

export function packFirmware(image: Buffer, model: string, version: string, vendorKey: KeyObject): Buffer {
  if (!PRINTABLE.test(version)) throw new DockError('CLI_USAGE', `firmware version must be 1 to 32 printable ASCII characters, got ${JSON.stringify(version)}`);
  if (image.length < 1 || image.length > MAX_FIRMWARE_BYTES) throw new DockError('CLI_USAGE', `a firmware image must be 1 byte to 64 MiB, this one is ${image.length} bytes`);
  const sha256 = firmwareSha256(image);
  const signature = sign(null, Buffer.concat([Buffer.from(`DOCKSIDE-FW-V1\0${model}\0${version}\0`, 'latin1'), sha256]), vendorKey);
  const header = JSON.stringify({ model, version, size: image.length, sha256: sha256.toString('hex'), signature: signature.toString('base64') });
  return Buffer.concat([Buffer.from(FIRMWARE_PACKAGE_MAGIC), Buffer.from(`${header}\n`), image]);
}

function bad(what: string, source: string): DockError {
  return new DockError('FIRMWARE_INVALID', `${source} is not a usable firmware package: ${what}. Use the package exactly as the vendor shipped it (\`dockside firmware pack\` makes one)`, { source });
}

/** Parses a package; the signature is not checked here (verifyFirmwarePackage does). */
export function parseFirmwarePackage(bytes: Buffer, source = 'the firmware file'): FirmwarePackage {
  const magic = Buffer.from(FIRMWARE_PACKAGE_MAGIC);
  if (bytes.length < magic.length || !bytes.subarray(0, magic.length).equals(magic)) throw bad(`it does not start with ${JSON.stringify(FIRMWARE_PACKAGE_MAGIC.trim())} (an unsigned raw image?)`, source);
  const nl = bytes.indexOf(0x0a, magic.length);
  if (nl < 0 || nl - magic.length > MAX_HEADER) throw bad('its header line is missing or too long', source);
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(bytes.subarray(magic.length, nl).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('its header is not JSON', source);
  }
  if (typeof h !== 'object' || h === null) throw bad('its header is not an object', source);
  const { model, version, size, sha256, signature } = h;
  if (typeof model !== 'string' || !/^[\x20-\x7e]{1,64}$/.test(model)) throw bad('the header has no valid "model"', source);
  if (typeof version !== 'string' || !PRINTABLE.test(version)) throw bad('the header has no valid "version" (1 to 32 printable ASCII characters)', source);
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_FIRMWARE_BYTES) throw bad('the header "size" is not from 1 byte to 64 MiB', source);
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw bad('the header "sha256" is not 64 hex digits', source);
  if (typeof signature !== 'string' || signature.length === 0) throw bad('it is not signed (no "signature" in its header)', source);
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) throw bad('its signature is not 64 bytes of base64', source);
  const image = bytes.subarray(nl + 1);
  if (image.length !== size) throw bad(`it holds ${image.length} image bytes, its header says ${size} (truncated or padded)`, source);
  return { model, version, sha256: Buffer.from(sha256, 'hex'), signature: sig, image };
}

/**
 * Checks that the package is for `model` and signed by `vendorKey` (base64 SPKI of the
 * model profile's firmwarePublicKey) over exactly these bytes.
 */
export function verifyFirmwarePackage(pkg: FirmwarePackage, model: string, vendorKey: string, source = 'the firmware file'): void {
  if (pkg.model !== model) throw new DockError('FIRMWARE_INVALID', `${source} is firmware for ${JSON.stringify(pkg.model)}, and this camera is a ${JSON.stringify(model)}; nothing was sent`, { source, model: pkg.model });
  if (!firmwareSha256(pkg.image).equals(pkg.sha256)) throw new DockError('FIRMWARE_INVALID', `${source}: the image does not hash to the sha256 in its header (damaged in transit?); nothing was sent`, { source });
  if (!verifyFirmwareSignature(vendorKey, pkg.model, pkg.version, pkg.sha256, pkg.signature)) {
    throw new DockError('FIRMWARE_INVALID', `${source}: the signature does not verify against the ${model} vendor key (not signed by the vendor, or signed for another version); nothing was sent`, { source });
  }
}
