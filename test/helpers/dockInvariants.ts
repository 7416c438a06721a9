// What must hold of a dock and its simulated cameras, read from disk alone (the data
// dir's ledger, vault, quarantine and spool, an S3 bucket when that is the sink, and
// each camera's flash and log), so the same checks serve the crash soak, the fault
// matrix, the store and spool fault tests, in-process or against the built program.
//
//   always (even right after a SIGKILL)       settled (the dock reached idle)
//   ─────────────────────────────────────     ─────────────────────────────────────────
//   every RELEASE the camera logged, and       every recorded clip is stored (one object,
//   every release mark, came after a ledger    hashing to its manifest, released, gone
//   'stored' with that sha256, and that        from the camera) or quarantined for the
//   object is in the store hashing to it       fault planted in it (kept on the camera)
//   no clip freed twice                        planted gaps recorded as chain_gap
//   one object per clip, no stray keys         the spool is empty, no vault temp files
//   quarantined only what was planted          custody verifies (ledger, objects, chain)
//   chain_gap only after a planted gap/tamper  a rogue camera: refused, nothing listed
//
// The problems come back as sentences; an empty list means every invariant holds.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { verifyCustody, type CustodyReport } from '../../src/custody/verifyCustody.js';
import type { LedgerEntry } from '../../src/custody/Ledger.js';
import { readCameras, readLedger, releaseProblems, sha256File, type CameraOnDisk } from './crashHarness.js';
import { fetchObject, s3Client } from './s3Server.js';

export type SinkUnderTest = { kind: 'dir' } | { kind: 's3'; endpoint: string; bucket: string; prefix: string };

export interface DockExpectation {
  /** Simulated cameras in DATA_DIR/sim. */
  cameras: number;
  /** The cameras sign with a key the dock did not enroll: every one refused, nothing of them kept. */
  rogue?: boolean;
  /** Where the clips go; default the data dir's vault. */
  sink?: SinkUnderTest;
  /**
   * true (default): the dock reached idle, so every clip must be done. false: it may
   * have been killed a moment ago; only what holds at every instant is checked.
   */
  settled?: boolean;
}

export interface DockCheck {
  problems: string[];
  /** Clips the cameras recorded (gap clips excluded: they never reached the dock). */
  clips: number;
  stored: number;
  quarantined: number;
  released: number;
  gapsRecorded: number;
  custody: CustodyReport | undefined;
}

const RELEASE_LINE = /^RELEASE (\S+) sha256=([0-9a-f]{64}) receipt=/;
/** checkClip's reason for bytes that rotted on the camera after hashing (the corrupt fault). */
const ROTTED = /^the spooled bytes hash to [0-9a-f]{64}, not the manifest's [0-9a-f]{64}$/;

/** The sequence number in a simulated clip id (`20261130T060000Z-000007` is seq 7). */
export function seqOf(clipId: string): number {
  const m = /-(\d+)$/.exec(clipId);
  return m ? Number(m[1]) : NaN;
}

/** A stored object as the checks see it, whichever the sink. */
interface StoredObject {
  key: string; // serial/clipId
  file: string; // object name in its store (clipId.bin)
  sha256: string | undefined; // of the object's bytes; undefined: no object, only a sidecar
  manifestSha256: string | undefined; // from its sidecar; undefined: no sidecar
  sidecarEvents: string[];
}

interface StoreView {
  objects: Map<string, StoredObject>;
  problems: string[];
  /** A directory laid out <serial>/<clipId>.* for verifyCustody (a copy of the bucket for S3). */
  vaultDir: string;
  cleanup(): void;
}

function readSidecar(path: string): { clip: { file: string }; manifest: { sha256: string }; custody: { event: string }[] } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { clip: { file: string }; manifest: { sha256: string }; custody: { event: string }[] };
  } catch {
    return undefined;
  }
}

/** Reads a vault laid out <serial>/<clipId>.{bin,mp4,json}: every object, its hash, its sidecar. */
function viewVault(root: string, settled: boolean): Omit<StoreView, 'vaultDir' | 'cleanup'> {
  const objects = new Map<string, StoredObject>();
  const problems: string[] = [];
  if (!existsSync(root)) return { objects, problems };
  for (const serial of readdirSync(root).sort()) {
    const dir = join(root, serial);
    const names = readdirSync(dir).sort();
    for (const n of names) {
      // A kill mid-copy leaves a temporary file, which the next run replaces; once idle there is none.
      if (n.startsWith('.') || !/\.(json|bin|mp4)$/.test(n)) {
        if (settled) problems.push(`vault ${serial}/${n}: a temporary or unexpected file left behind`);
        continue;
      }
      const id = n.replace(/\.(json|bin|mp4)$/, '');
      const key = `${serial}/${id}`;
      const o = objects.get(key) ?? { key, file: '', sha256: undefined, manifestSha256: undefined, sidecarEvents: [] };
      if (n.endsWith('.json')) {
        const sc = readSidecar(join(dir, n));
        // Mid-run, a sidecar may be caught while it is being rewritten (s3rver writes in place).
        if (!sc) {
          if (settled) problems.push(`vault ${key}: the sidecar is not readable JSON`);
        }
        else {
          o.manifestSha256 = sc.manifest.sha256;
          o.sidecarEvents = sc.custody.map((e) => e.event);
        }
      } else {
        if (o.file) problems.push(`vault ${key}: two objects for one clip (${o.file}, ${n})`);
        o.file = n;
        o.sha256 = sha256File(join(dir, n));
      }
      objects.set(key, o);
    }
  }
  return { objects, problems };
}

async function viewStore(dataDir: string, sink: SinkUnderTest, settled: boolean): Promise<StoreView> {
  if (sink.kind === 'dir') {
    const vaultDir = join(dataDir, 'vault');
    return { ...viewVault(vaultDir, settled), vaultDir, cleanup: () => undefined };
  }
  // The bucket, copied key by key (plain HTTP GETs) into a directory laid out as a vault.
  const copy = mkdtempSync(join(tmpdir(), 'dockside-bucket-copy-'));
  const problems: string[] = [];
  const client = s3Client(sink.endpoint);
  const keys: string[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: sink.bucket, Prefix: `${sink.prefix}/`, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } finally {
    client.destroy();
  }
  for (const k of keys) {
    const rest = k.slice(sink.prefix.length + 1).split('/');
    if (rest.length !== 2 || !/\.(json|bin|mp4)$/.test(rest[1]!)) {
      problems.push(`bucket key ${k}: not <prefix>/<serial>/<clipId>.{bin,mp4,json}`);
      continue;
    }
    mkdirSync(join(copy, rest[0]!), { recursive: true });
    writeFileSync(join(copy, rest[0]!, rest[1]!), await fetchObject(sink.endpoint, sink.bucket, k));
  }
  const v = viewVault(copy, settled);
  return { objects: v.objects, problems: [...problems, ...v.problems.map((p) => p.replace(/^vault/, 'bucket'))], vaultDir: copy, cleanup: () => rmSync(copy, { recursive: true, force: true }) };
}

function quarantineFiles(dataDir: string, settled: boolean): Map<string, string[]> {
  const root = join(dataDir, 'quarantine');
  const out = new Map<string, string[]>();
  if (!existsSync(root)) return out;
  for (const serial of readdirSync(root)) {
    for (const f of readdirSync(join(root, serial))) {
      // A kill mid-write leaves a temporary reason file; the next run writes it again.
      if (f.startsWith('.')) {
        if (settled) out.set(`${serial}/${f}`, [f]);
        continue;
      }
      const key = `${serial}/${f.replace(/\.reason\.json$|\.(bin|mp4)$/, '')}`;
      out.set(key, [...(out.get(key) ?? []), f]);
    }
  }
  return out;
}

/** What the camera's planted faults say a clip must become. */
function plantedFate(cam: CameraOnDisk, clipId: string): 'corrupt' | 'tamper' | 'stored' {
  if (cam.planted.corrupt.includes(clipId)) return 'corrupt';
  if (cam.planted.tamper.includes(clipId)) return 'tamper';
  return 'stored';
}

/**
 * A chain_gap on clip seq s is explained when the clip before it is one the camera
 * lost (gap) or one whose signed link cannot be trusted (tamper: quarantined, so the
 * dock's chain stays at the clip before). Anything else is a false gap.
 */
function gapExplained(cam: CameraOnDisk, clipId: string): boolean {
  const before = seqOf(clipId) - 1;
  return [...cam.planted.gap, ...cam.planted.tamper].some((id) => seqOf(id) === before);
}

export async function checkDock(dataDir: string, exp: DockExpectation): Promise<DockCheck> {
  const settled = exp.settled ?? true;
  const sink = exp.sink ?? { kind: 'dir' };
  const problems: string[] = [];
  const ledger = readLedger(dataDir);
  const cams = readCameras(dataDir);
  const byClip = new Map<string, LedgerEntry[]>();
  for (const e of ledger) if (e.clipId) byClip.set(`${e.serial}/${e.clipId}`, [...(byClip.get(`${e.serial}/${e.clipId}`) ?? []), e]);
  const events = (key: string, event: string): LedgerEntry[] => (byClip.get(key) ?? []).filter((e) => e.event === event);
  if (cams.length !== exp.cameras) problems.push(`${cams.length} simulated cameras in ${join(dataDir, 'sim')}, expected ${exp.cameras}`);

  // Always: releases only after stored (the camera's own log and marks against the ledger).
  for (const p of releaseProblems(dataDir)) problems.push(`${p.serial}/${p.clipId}: ${p.problem}`);

  const store = await viewStore(dataDir, sink, settled);
  const quarantine = quarantineFiles(dataDir, settled);
  let custody: CustodyReport | undefined;
  let stored = 0;
  let released = 0;
  let quarantined = 0;
  let clips = 0;
  try {
    problems.push(...store.problems);
    const known = new Set<string>();
    for (const cam of cams) {
      // Always: each release the camera obeyed names an object in the store that hashes to that sha256.
      const releases = new Map<string, string>();
      for (const rec of cam.log) {
        const m = RELEASE_LINE.exec(rec.message);
        if (m) releases.set(m[1]!, m[2]!);
      }
      for (const mark of cam.marks) releases.set(mark.clipId, mark.sha256);
      for (const [clipId, sha] of releases) {
        const o = store.objects.get(`${cam.serial}/${clipId}`);
        if (!o?.sha256) problems.push(`${cam.serial}/${clipId}: released by the camera, but the store has no object for it`);
        else if (o.sha256 !== sha) problems.push(`${cam.serial}/${clipId}: released with sha256 ${sha.slice(0, 12)}…, the stored object hashes to ${o.sha256.slice(0, 12)}…`);
      }
      // Always: a quarantined clip was planted to fail, and fails for that reason.
      for (const e of ledger.filter((x) => x.event === 'quarantined' && x.serial === cam.serial)) {
        const id = String(e.clipId);
        const fate = plantedFate(cam, id);
        const check = String(e.details['check']);
        const reason = String(e.details['reason']);
        if (fate === 'stored') problems.push(`${cam.serial}/${id}: quarantined (${check}: ${reason}), but no fault was planted in it`);
        else if (fate === 'corrupt' && !(check === 'hash' && ROTTED.test(reason))) problems.push(`${cam.serial}/${id}: planted corrupt, but quarantined for ${check}: ${reason}`);
        else if (fate === 'tamper' && check !== 'signature') problems.push(`${cam.serial}/${id}: planted tamper, but quarantined for ${check}: ${reason}`);
      }
      // Always: a chain gap is recorded only where the camera really lost a clip or broke its chain.
      for (const e of ledger.filter((x) => x.event === 'chain_gap' && x.serial === cam.serial)) {
        if (!gapExplained(cam, String(e.clipId))) problems.push(`${cam.serial}/${String(e.clipId)}: chain_gap recorded, but no planted gap or tamper comes right before it (a false gap)`);
      }
      for (const id of cam.manifests) known.add(`${cam.serial}/${id}`);
      for (const [key] of quarantine) {
        if (!key.startsWith(`${cam.serial}/`)) continue;
        const name = key.slice(cam.serial.length + 1);
        if (name.startsWith('.')) problems.push(`quarantine/${key}: a temporary file left behind`);
        else if (plantedFate(cam, name) === 'stored') problems.push(`quarantine/${key}: in quarantine, but no fault was planted in it`);
      }
    }
    // Always: the store holds only clips the cameras recorded.
    for (const key of store.objects.keys()) if (!known.has(key)) problems.push(`${key}: in the store, but no camera recorded it`);

    if (exp.rogue) {
      for (const cam of cams) {
        if (!ledger.some((e) => e.event === 'refused' && e.serial === cam.serial)) problems.push(`${cam.serial}: a rogue camera, but the ledger has no 'refused' for it`);
        if (ledger.some((e) => e.serial === cam.serial && e.clipId)) problems.push(`${cam.serial}: a rogue camera, but the ledger has clip events for it`);
        if (cam.marks.length > 0) problems.push(`${cam.serial}: a rogue camera released ${cam.marks.length} clips`);
        if (cam.held.length !== cam.manifests.length) problems.push(`${cam.serial}: a rogue camera holds ${cam.held.length} of its ${cam.manifests.length} clips`);
      }
      if (store.objects.size > 0) problems.push(`${store.objects.size} objects stored from rogue cameras`);
    }

    for (const cam of cams) {
      for (const id of cam.manifests) {
        clips++;
        const key = `${cam.serial}/${id}`;
        const fate = exp.rogue ? 'refused' : plantedFate(cam, id);
        const o = store.objects.get(key);
        const wasReleased = cam.marks.some((m) => m.clipId === id);
        if (o?.sha256) stored++;
        if (wasReleased) released++;
        if (quarantine.has(key)) quarantined++;
        const freed = events(key, 'released').filter((e) => Number(e.details['freedBytes']) > 0);
        if (freed.length > 1) problems.push(`${key}: freed ${freed.length} times`);
        if (fate === 'corrupt' || fate === 'tamper') {
          // Always: a planted clip is never stored, never released, never leaves the camera.
          if (o) problems.push(`${key}: planted ${fate}, but it is in the store`);
          if (wasReleased || !cam.held.includes(id)) problems.push(`${key}: planted ${fate}, but the camera released it`);
        }
        if (!settled || fate === 'refused') continue;
        if (fate === 'stored') {
          if (!o?.sha256) problems.push(`${key}: recorded, not planted to fail, but not in the store (ledger: ${(byClip.get(key) ?? []).map((e) => e.event).join(', ') || 'nothing'})`);
          else {
            if (o.manifestSha256 === undefined) problems.push(`${key}: stored without a sidecar`);
            else if (o.manifestSha256 !== o.sha256) problems.push(`${key}: the stored object hashes to ${o.sha256.slice(0, 12)}…, its sidecar's manifest says ${o.manifestSha256.slice(0, 12)}…`);
            if (!o.sidecarEvents.includes('released')) problems.push(`${key}: the sidecar does not carry the clip's release`);
          }
          if (!wasReleased || cam.held.includes(id)) problems.push(`${key}: stored, but the camera still holds it (released: ${String(wasReleased)})`);
          // A kill between the 'stored' line and its state commit stores the clip again on the
          // restart (idempotently, the same object): more than one line, never another hash.
          const lines = events(key, 'stored');
          if (lines.length === 0) problems.push(`${key}: in the store, but no 'stored' line in the ledger`);
          for (const e of lines) if (e.details['sha256'] !== o?.sha256) problems.push(`${key}: a 'stored' line (seq ${e.seq}) with sha256 ${String(e.details['sha256']).slice(0, 12)}…, not the object's`);
        } else {
          const files = (quarantine.get(key) ?? []).sort();
          if (files.length !== 2 || !files.some((f) => f.endsWith('.reason.json'))) problems.push(`${key}: planted ${fate}, but quarantine/ holds [${files.join(', ')}] for it`);
          if (events(key, 'quarantined').length === 0) problems.push(`${key}: planted ${fate}, but never quarantined in the ledger`);
        }
      }
      if (!settled || exp.rogue) continue;
      // A lost clip with a clip after it that the dock verified: the dock must have said so.
      for (const gap of cam.planted.gap) {
        const next = cam.manifests.filter((id) => seqOf(id) > seqOf(gap)).sort((a, b) => seqOf(a) - seqOf(b))[0];
        if (next === undefined || plantedFate(cam, next) !== 'stored') continue;
        if (events(`${cam.serial}/${next}`, 'chain_gap').length === 0) problems.push(`${cam.serial}/${next}: clip ${gap} before it was lost on the camera, but no chain_gap was recorded`);
      }
    }
    if (settled) {
      const spool = join(dataDir, 'spool');
      const left = existsSync(spool) ? readdirSync(spool).flatMap((s) => (statSync(join(spool, s)).isDirectory() ? readdirSync(join(spool, s)).map((f) => `${s}/${f}`) : [s])) : [];
      if (left.length > 0) problems.push(`left in the spool: ${left.join(', ')}`);
      custody = await verifyCustody(dataDir, sink.kind === 's3' ? { vaults: [store.vaultDir] } : {});
      if (!custody.ok) problems.push(`custody does not verify: ${JSON.stringify({ ledger: custody.ledger.problems, objects: custody.objects.problems, chain: custody.chain.problems })}`);
      if (!exp.rogue && custody.objects.checked !== stored) problems.push(`custody verify checked ${custody.objects.checked} objects, the store holds ${stored}`);
    }
  } finally {
    store.cleanup();
  }
  return { problems, clips, stored, quarantined, released, gapsRecorded: ledger.filter((e) => e.event === 'chain_gap').length, custody };
}
