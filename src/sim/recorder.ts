/**
 * The camera's recorder: makes a clip, hashes it, links it into the camera's hash
 * chain, signs the manifest, and stores all of it on flash, exactly in the order a
 * real camera would at the end of a recording. Record-time faults (corrupt, tamper,
 * gap) are planted here, after signing, as the fault vocabulary defines them.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { sealManifest, signManifest, type UnchainedManifest } from '../custody/manifest.js';
import { recordTestClip, type TestClipOptions } from '../media.js';
import type { Faults } from './faults.js';
import type { Flash } from './Flash.js';
import { Random } from './Random.js';
import { writeSyntheticClip } from './syntheticClip.js';
import { TRIGGERS } from '../protocol/messages.js';

export interface RecordOptions {
  count: number;
  mode: 'mp4' | 'synthetic'; // default mp4: real H.264+AAC; synthetic: deterministic bytes of `syntheticBytes`
  syntheticBytes: number; // default 8 MiB
  video: Partial<Pick<TestClipOptions, 'durationS' | 'width' | 'height' | 'fps'>>;
  faults: Pick<Faults, 'corrupt' | 'tamper' | 'gap'>;
  /** UTC ms of the first recording; default: derived from the camera's seed. */
  firstStartMs?: number;
}

export const RECORD_DEFAULTS = { mode: 'mp4', syntheticBytes: 8 * 1024 * 1024 } as const;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export async function recordClips(flash: Flash, options: RecordOptions): Promise<string[]> {
  const id = flash.identity;
  const rnd = new Random(id.seed, `${id.serial}/record/${id.lastSeq}`);
  // A later recording session starts after the last clip this camera recorded.
  const earliest = id.lastEndMs > 0 ? id.lastEndMs + rnd.int(60, 1800) * 1000 : Date.UTC(2026, 10, 30, 6, 0, 0) + rnd.int(0, 3600) * 1000;
  let startMs = options.firstStartMs ?? earliest;
  let lastEndMs = id.lastEndMs;
  const ids: string[] = [];
  let prevChain = id.lastChain;
  let seq = id.lastSeq;
  for (let i = 0; i < options.count; i++) {
    seq++;
    const clipId = `${stamp(startMs)}-${String(seq).padStart(6, '0')}`;
    const container = options.mode === 'mp4' ? 'mp4' : 'bin';
    const path = flash.clipPath(clipId, container);
    const durationS = options.mode === 'mp4' ? (options.video.durationS ?? 3) : rnd.int(30, 900);
    let sha256: string;
    if (options.mode === 'mp4') {
      await recordTestClip(path, { serial: id.serial, startMs, ...options.video, durationS, toneHz: 440 + (seq % 8) * 110 });
      sha256 = await sha256File(path);
    } else {
      sha256 = await writeSyntheticClip(path, options.syntheticBytes, `${id.serial}/${seq}`);
    }
    const { size } = await stat(path);
    const trigger = TRIGGERS[rnd.int(0, 9) === 0 ? 2 : rnd.int(0, 1)]!;
    const m: UnchainedManifest = {
      format: 'dockside-manifest-v1',
      serial: id.serial,
      model: id.model,
      firmware: id.firmware,
      clipId,
      seq,
      officerId: id.officerId,
      startMs,
      endMs: startMs + durationS * 1000,
      durationMs: durationS * 1000,
      preEventS: 30,
      trigger,
      gps: { latE7: 389_000_000 + rnd.int(-500_000, 500_000), lonE7: -770_300_000 + rnd.int(-500_000, 500_000), accuracyM: rnd.int(3, 25) },
      container,
      size,
      sha256,
      prevChain,
    };
    const { manifest, bytes } = sealManifest(m);
    flash.addClip(bytes, signManifest(bytes, flash.privateKey));
    prevChain = manifest.chain;
    lastEndMs = manifest.endMs;
    ids.push(clipId);
    startMs += durationS * 1000 + rnd.int(60, 1800) * 1000;
  }
  flash.updateIdentity({ lastSeq: seq, lastChain: prevChain, lastEndMs });
  flash.appendLog(20, `recorded ${ids.length} clips (seq ${seq - ids.length + 1}..${seq})`);
  await plantFaults(flash, ids, options.faults);
  return ids;
}

/** Chooses distinct clips for each record-time fault, deterministically from the seed. */
async function plantFaults(flash: Flash, ids: string[], faults: Pick<Faults, 'corrupt' | 'tamper' | 'gap'>): Promise<void> {
  const total = faults.corrupt + faults.tamper + faults.gap;
  if (total === 0 || ids.length === 0) return;
  const rnd = new Random(flash.identity.seed, `${flash.identity.serial}/faults`);
  const chosen = rnd.pick(ids.length, total).map((i) => ids[i]!);
  const corrupt = chosen.slice(0, faults.corrupt);
  const tamper = chosen.slice(faults.corrupt, faults.corrupt + faults.tamper);
  const gap = chosen.slice(faults.corrupt + faults.tamper);
  for (const clipId of corrupt) {
    // Bit rot after hashing: one byte flips in the stored clip; the manifest keeps the true hash.
    const c = flash.clip(clipId)!;
    await flipByte(c.path, Math.floor(c.manifest.size / 2));
    flash.appendLog(40, `FAULT corrupt: ${clipId} stored bytes rotted after hashing`);
  }
  for (const clipId of tamper) {
    // Altered after signing: bytes changed, plain hash (and chain) recomputed, old signature kept.
    const c = flash.clip(clipId)!;
    await flipByte(c.path, Math.floor(c.manifest.size / 3));
    const sha256 = await sha256File(c.path);
    const { chain: _old, ...rest } = c.manifest;
    const { bytes } = sealManifest({ ...rest, sha256 });
    // The sealed bytes are canonical and self-consistent, so the signature is what catches
    // this; the next clip's prevChain still names the original chain value, so a verifier
    // also sees the chain break after it.
    flash.addClip(bytes, c.signature);
    flash.appendLog(40, `FAULT tamper: ${clipId} altered after signing`);
  }
  for (const clipId of gap) {
    flash.eraseClip(clipId);
    flash.appendLog(40, `FAULT gap: ${clipId} removed from flash`);
  }
  const planted = flash.identity.planted;
  flash.updateIdentity({ planted: { corrupt: [...planted.corrupt, ...corrupt], tamper: [...planted.tamper, ...tamper], gap: [...planted.gap, ...gap] } });
}

async function flipByte(path: string, position: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, position);
    b[0] = b[0]! ^ 0x5a;
    await fh.write(b, 0, 1, position);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
