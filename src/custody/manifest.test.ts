import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeChain, parseManifest, sealManifest, signManifest, verifyManifestSignature, type UnchainedManifest } from './manifest.js';
import { spkiToRawEd25519 } from '../protocol/auth.js';
import { sampleManifest } from '../../test/helpers/manifests.js';

const base: UnchainedManifest = sampleManifest(Buffer.alloc(0), { size: 1234, sha256: 'ab'.repeat(32) });

describe('manifest', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = spkiToRawEd25519(publicKey.export({ type: 'spki', format: 'der' }));

  it('seals, signs, parses and verifies', () => {
    const { manifest, bytes } = sealManifest(base);
    expect(manifest.chain).toBe(computeChain(base));
    const sig = signManifest(bytes, privateKey);
    expect(parseManifest(bytes)).toEqual(manifest);
    expect(verifyManifestSignature(bytes, sig, raw)).toBe(true);
  });

  it('a signature fails for any changed byte, and for another key', () => {
    const { bytes } = sealManifest(base);
    const sig = signManifest(bytes, privateKey);
    const changed = Buffer.from(bytes);
    changed[changed.indexOf('1234')] = '5'.charCodeAt(0);
    expect(verifyManifestSignature(changed, sig, raw)).toBe(false);
    expect(verifyManifestSignature(bytes, sig, Buffer.alloc(32, 9))).toBe(false);
    expect(verifyManifestSignature(bytes, sig.subarray(0, 63), raw)).toBe(false);
  });

  it('the chain value depends on the previous chain, the clip hash and every field', () => {
    const c0 = computeChain(base);
    expect(computeChain({ ...base, prevChain: 'cd'.repeat(32) })).not.toBe(c0);
    expect(computeChain({ ...base, sha256: 'cd'.repeat(32) })).not.toBe(c0);
    expect(computeChain({ ...base, officerId: 'OFC-9999' })).not.toBe(c0);
  });

  it('refuses bytes that are not canonical, a wrong chain, unknown fields and wrong types', () => {
    const { manifest, bytes } = sealManifest(base);
    expect(() => parseManifest(Buffer.from(JSON.stringify(manifest, null, 1)))).toThrow(/canonical form/);
    expect(() => parseManifest(Buffer.from(bytes.toString().replace(manifest.chain, '0'.repeat(64))))).toThrow(/chain value/);
    const extra = sealManifest({ ...base, extra: 1 } as unknown as UnchainedManifest).bytes;
    expect(() => parseManifest(extra)).toThrow(/CUSTODY|Unrecognized|unrecognized/i);
    const wrongType = Buffer.from(bytes.toString().replace('"size":1234', '"size":"1234"'));
    expect(() => parseManifest(wrongType)).toThrow(/size/);
    expect(() => parseManifest(Buffer.from('not json'))).toThrow(/not valid JSON/);
    expect(() => parseManifest(Buffer.from(bytes.toString().replace('20261130T060000Z-000001', '../../etc/passwd')))).toThrow(/clipId/);
  });
});
