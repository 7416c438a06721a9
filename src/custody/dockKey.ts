/**
 * The dock's own Ed25519 key: it signs every ledger line. Made on first run and kept
 * in the data directory, readable by the service user only.
 */
import { createPrivateKey, createPublicKey, createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockError } from '../errors.js';
import { spkiToRawEd25519 } from '../protocol/auth.js';

export interface DockKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicKeyRaw: Buffer;
  fingerprint: string; // sha256 of the raw public key, hex
}

export const DOCK_KEY_FILE = 'dock.key.pem';
export const DOCK_PUB_FILE = 'dock.pub.pem';

function describe(privateKey: KeyObject): DockKey {
  const publicKey = createPublicKey(privateKey);
  const publicKeyRaw = spkiToRawEd25519(publicKey.export({ type: 'spki', format: 'der' }));
  return { privateKey, publicKey, publicKeyRaw, fingerprint: createHash('sha256').update(publicKeyRaw).digest('hex') };
}

export function loadOrCreateDockKey(dataDir: string): DockKey {
  const keyPath = join(dataDir, DOCK_KEY_FILE);
  if (existsSync(keyPath)) {
    try {
      return describe(createPrivateKey(readFileSync(keyPath)));
    } catch (err) {
      throw new DockError('CONFIG_INVALID', `the dock key ${keyPath} cannot be read: ${(err as Error).message}. Restore it from backup; without it the ledger cannot be extended`, { path: keyPath });
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600, flag: 'wx' });
  writeFileSync(join(dataDir, DOCK_PUB_FILE), publicKey.export({ type: 'spki', format: 'pem' }) as string, { mode: 0o644 });
  return describe(privateKey);
}

/** The dock's public key for offline verification (dock.pub.pem), without the private key. */
export function loadDockPublicKey(dataDir: string): KeyObject {
  const path = join(dataDir, DOCK_PUB_FILE);
  try {
    return createPublicKey(readFileSync(path));
  } catch (err) {
    throw new DockError('CONFIG_INVALID', `cannot read the dock's public key ${path}: ${(err as Error).message}`, { path });
  }
}
