import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spkiToRawEd25519 } from '../protocol/auth.js';
import { canonicalJson } from './canonicalJson.js';
import { loadOrCreateDockKey } from './dockKey.js';
import { Ledger, type LedgerEntry } from './Ledger.js';
import { parseManifest, sealManifest, signManifest, verifyManifestSignature } from './manifest.js';
import { buildSidecar, devicePem, SIDECAR_FORMAT, type Sidecar } from './sidecar.js';
import { sampleManifest } from '../../test/helpers/manifests.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const device = generateKeyPairSync('ed25519');
const deviceRaw = spkiToRawEd25519(device.publicKey.export({ type: 'spki', format: 'der' }));
const CLIP = Buffer.from('clip bytes for the sidecar');

const { manifest, bytes } = sealManifest(sampleManifest(CLIP, { serial: 'BC4-SIDECAR1' }));
const signature = signManifest(bytes, device.privateKey);

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-sidecar-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('buildSidecar', () => {
  it('lets a third party verify the clip from the sidecar alone', async () => {
    const dock = loadOrCreateDockKey(root);
    const ledger = Ledger.open(join(root, 'ledger.jsonl'), dock.privateKey);
    const lines: string[] = [];
    ledger.onAppend = (e, line) => {
      if (e.clipId === manifest.clipId) lines.push(line);
    };
    const where = { serial: manifest.serial, clipId: manifest.clipId };
    ledger.append('listed', { ...where, details: { seq: 1 } });
    ledger.append('docked', { serial: manifest.serial });
    ledger.append('pulled', { ...where, details: { bytes: CLIP.length } });
    ledger.append('stored', { ...where, details: { sha256: manifest.sha256 } });
    await ledger.close();
    expect(lines).toHaveLength(3);

    const receipt = { location: '/vault/x.mp4', sha256: manifest.sha256, receipt: `dir:sha256:${manifest.sha256}` };
    const out = buildSidecar({ manifest, manifestBytes: bytes, signature, devicePublicKeyRaw: deviceRaw, dockPublicKey: dock.publicKey, dockFingerprint: dock.fingerprint, receipt, custodyLines: lines });
    expect(out.toString().endsWith('}\n')).toBe(true);
    const s = JSON.parse(out.toString()) as Sidecar;

    expect(s.format).toBe(SIDECAR_FORMAT);
    expect(s.clip).toEqual({ serial: manifest.serial, clipId: manifest.clipId, file: `${manifest.clipId}.mp4`, size: CLIP.length, sha256: sha(CLIP) });
    expect(s.manifest).toEqual(manifest);
    expect(s.receipt).toEqual(receipt);
    // jq -j .manifestCanonical: exactly the bytes the camera signed
    const signed = Buffer.from(s.manifestCanonical, 'latin1');
    expect(signed.equals(bytes)).toBe(true);
    expect(parseManifest(signed)).toEqual(manifest);
    // openssl pkeyutl -verify with devicePublicKeyPem
    expect(verify(null, signed, createPublicKey(s.devicePublicKeyPem), Buffer.from(s.signature, 'base64'))).toBe(true);
    expect(verifyManifestSignature(signed, Buffer.from(s.signature, 'base64'), deviceRaw)).toBe(true);
    // the custody events: this clip's lines in order, each signed by the dock whose key is in the sidecar
    expect(s.custody.map((e) => e.event)).toEqual(['listed', 'pulled', 'stored']);
    expect(s.dock.fingerprint).toBe(dock.fingerprint);
    const dockPub = createPublicKey(s.dock.publicKeyPem);
    for (const [i, e] of s.custody.entries()) {
      expect(canonicalJson(e)).toBe(lines[i]); // the exact line is recoverable, so its hash can be checked
      const { sig, ...body } = e as LedgerEntry;
      expect(verify(null, Buffer.from(canonicalJson(body)), dockPub, Buffer.from(sig, 'base64'))).toBe(true);
    }
    expect(readFileSync(join(root, 'dock.pub.pem'), 'utf8')).toBe(s.dock.publicKeyPem);
  });

  it('without a receipt (not stored yet) says so', () => {
    const dock = loadOrCreateDockKey(root);
    const s = JSON.parse(buildSidecar({ manifest, manifestBytes: bytes, signature, devicePublicKeyRaw: deviceRaw, dockPublicKey: dock.publicKey, dockFingerprint: dock.fingerprint, receipt: null, custodyLines: [] }).toString()) as Sidecar;
    expect(s.receipt).toBeNull();
    expect(s.custody).toEqual([]);
  });

  it('devicePem round-trips the raw key', () => {
    expect(spkiToRawEd25519(createPublicKey(devicePem(deviceRaw)).export({ type: 'spki', format: 'der' })).equals(deviceRaw)).toBe(true);
    expect(() => devicePem(Buffer.alloc(31))).toThrow(/32 bytes/);
  });
});
