// An enrolled camera whose firmware is honest by default and lies where a test says:
// a daemon bay serves it like any other (HELLO, AUTH with a real device key, STATUS,
// LIST_CLIPS, GET_MANIFEST, READ, RELEASE), and `lie` may replace any answer with
// raw bytes (values the encoder refuses, such as u64 above 2^53 - 1, included).
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { sealManifest, signManifest, type UnchainedManifest } from '../../src/custody/manifest.js';
import type { Candidate } from '../../src/hal/discovery.js';
import { authMessage, spkiToRawEd25519 } from '../../src/protocol/auth.js';
import { decodeStruct, encodeStruct } from '../../src/protocol/codec.js';
import type { Frame } from '../../src/protocol/frame.js';
import { MESSAGES, REMOTE_ERRORS, type ClipEntry, type MessageName, type Response } from '../../src/protocol/messages.js';
import { sign } from 'node:crypto';
import { answer, GOOD_HELLO, rawFrame, scriptedCamera } from './scriptedCamera.js';

export interface HostileClip {
  id: string; // as listed (may be anything: the point of some tests)
  bytes: Buffer; // what READ serves
  manifest: Buffer; // what GET_MANIFEST serves, signed by the camera's key
  entry?: Partial<ClipEntry>; // listing fields that lie
}

export type Lie = (name: MessageName | undefined, req: Record<string, unknown>, frame: Frame, honest: () => Buffer | Buffer[]) => Buffer | Buffer[] | null;

export interface HostileCamera {
  serial: string;
  publicKeyRaw: Buffer;
  privateKey: KeyObject;
  candidate: Candidate;
  released: string[]; // clip ids the dock released
  requests: { name: MessageName | undefined; seq: number }[];
}

/** A valid manifest for `bytes` of this camera, sealed; `over` changes fields before sealing. */
export function manifestFor(serial: string, clipId: string, seq: number, bytes: Buffer, over: Partial<UnchainedManifest> = {}): Buffer {
  const start = Date.UTC(2026, 10, 30, 6) + seq * 10_000;
  return sealManifest({
    format: 'dockside-manifest-v1', serial, model: 'Scripted', firmware: '1.0', clipId, seq, officerId: 'OFC-1',
    startMs: start, endMs: start + 3000, durationMs: 3000, preEventS: 0, trigger: 'button', gps: null, container: 'bin',
    size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), prevChain: '0'.repeat(64), ...over,
  }).bytes;
}

/**
 * `clips` are served in listing order with seq 1, 2, ...; `makeClips` gets the key
 * so that manifests can be signed by it. `lie` sees every request first.
 */
export function hostileCamera(serial: string, makeClips: (serial: string) => HostileClip[], lie: Lie = () => null): HostileCamera {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicKeyRaw = spkiToRawEd25519(publicKey.export({ type: 'spki', format: 'der' }));
  const clips = makeClips(serial);
  const released: string[] = [];
  const listed = (): Response<'LIST_CLIPS'> => ({
    clips: clips.map((c, i) => ({ id: c.id, seq: i + 1, size: c.bytes.length, startMs: Date.UTC(2026, 10, 30, 6), durationMs: 3000, trigger: 0, released: released.includes(c.id), ...c.entry })),
    more: false,
    next: clips.length + 1,
  });
  const remote = (seq: number, code: keyof typeof REMOTE_ERRORS, message: string): Buffer => answer('ERROR', seq, { code: REMOTE_ERRORS[code], message });
  const honest = (name: MessageName | undefined, req: Record<string, unknown>, f: Frame): Buffer | Buffer[] => {
    const clip = (id: unknown) => clips.find((c) => c.id === id);
    switch (name) {
      case 'HELLO':
        return answer('HELLO', f.seq, { ...GOOD_HELLO, serial });
      case 'AUTH':
        return answer('AUTH', f.seq, { publicKey: publicKeyRaw, signature: sign(null, authMessage(serial, Buffer.from(req['nonce'] as Buffer)), privateKey) });
      case 'STATUS':
        return answer('STATUS', f.seq, { batteryPct: 80, charging: true, storageTotal: 1 << 30, storageUsed: 1 << 20, clipCount: clips.length, unreleasedCount: clips.length, temperatureMilliC: 30_000, clockMs: Date.now(), uptimeS: 60 });
      case 'SET_TIME':
        return answer('SET_TIME', f.seq, { previousMs: Date.now() });
      case 'LIST_CLIPS':
        return answer('LIST_CLIPS', f.seq, listed());
      case 'GET_MANIFEST': {
        const c = clip(req['clipId']);
        if (!c) return remote(f.seq, 'NO_SUCH_CLIP', 'no such clip');
        return answer('GET_MANIFEST', f.seq, { manifest: c.manifest, signature: signManifest(c.manifest, privateKey) });
      }
      case 'READ': {
        const c = clip(req['clipId']);
        const offset = req['offset'] as number;
        const length = req['length'] as number;
        if (!c) return remote(f.seq, 'NO_SUCH_CLIP', 'no such clip');
        if (length < 1 || offset + length > c.bytes.length) return remote(f.seq, 'BAD_RANGE', `${offset}+${length} is beyond ${c.bytes.length}`);
        return answer('READ', f.seq, { offset, data: c.bytes.subarray(offset, offset + length) });
      }
      case 'RELEASE': {
        const c = clip(req['clipId']);
        if (!c) return remote(f.seq, 'NO_SUCH_CLIP', 'no such clip');
        if (!released.includes(c.id)) released.push(c.id);
        return answer('RELEASE', f.seq, { released: true, freedBytes: c.bytes.length });
      }
      default:
        return remote(f.seq, 'UNKNOWN_TYPE', `${String(name)} is not supported`);
    }
  };
  const { dock, requests } = scriptedCamera((name, f) => {
    let req: Record<string, unknown> = {};
    if (name && name !== 'ERROR') {
      try {
        req = decodeStruct(MESSAGES[name].req, f.payload) as Record<string, unknown>;
      } catch {
        return rawFrame(MESSAGES.ERROR.type, f.seq, encodeStruct(MESSAGES.ERROR.res, { code: REMOTE_ERRORS.BAD_PAYLOAD, message: 'bad payload' }));
      }
    }
    return lie(name, req, f, () => honest(name, req, f)) ?? honest(name, req, f);
  });
  let used = false;
  const candidate: Candidate = {
    kind: 'loopback',
    path: `hostile:${serial}`,
    profileId: undefined,
    createTransport: () => {
      if (used) throw new Error(`hostile camera ${serial} was opened twice`);
      used = true;
      return dock;
    },
  };
  return { serial, publicKeyRaw, privateKey, candidate, released, requests };
}
