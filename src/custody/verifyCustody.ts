/**
 * `dockside custody verify`: everything a custodian can check offline, from the
 * ledger, the vault and the dock's public key alone (no state database, no daemon):
 *
 *   ledger     every line's hash link, sequence, canonical form and dock signature
 *   objects    every vault clip hashes to its sidecar's manifest sha256; the manifest
 *              bytes are canonical and signed by the device key; that key is the one
 *              the ledger says was enrolled; the sidecar's custody lines are the
 *              ledger's own lines; the ledger says it was stored with that hash, and
 *              any release came after that
 *   chain      per camera, each clip's prevChain is the chain value of the clip before;
 *              a break the ledger recorded (chain_gap) is reported, not failed
 *   missing    every clip the ledger says was stored is in the vault
 *
 * Clips stored in an S3 bucket are checked from a local copy of it (`vaults`, e.g.
 * after `aws s3 sync s3://evidence/dock1 DIR`); without one they are counted as
 * `remote`, not checked and not failed.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { canonicalJson } from './canonicalJson.js';
import { loadDockPublicKey } from './dockKey.js';
import { shown, verifyLedgerFile, type LedgerEntry, type LedgerProblem } from './Ledger.js';
import { parseManifest, verifyManifestSignature, GENESIS_CHAIN } from './manifest.js';
import { SIDECAR_FORMAT, type Sidecar } from './sidecar.js';
import { spkiToRawEd25519 } from '../protocol/auth.js';

export interface ClipProblem {
  serial: string;
  clipId: string;
  problem: string;
}

export interface CustodyReport {
  ok: boolean;
  dataDir: string;
  ledger: { entries: number; problems: LedgerProblem[] };
  objects: { checked: number; bytes: number; problems: ClipProblem[] };
  chain: { gaps: ClipProblem[]; problems: ClipProblem[] };
  quarantined: { serial: string; clipId: string; reason: string }[];
  released: number;
  remote: { clips: number; sinks: string[] }; // stored in an object store and not checked here (no --vault copy given)
  dockFingerprint: string;
}

/** SHA-256 and length of a file, streamed (clips can be far larger than memory). */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

const key = (serial: string | null, clipId: string | null): string => `${serial}/${clipId}`;

export interface VerifyCustodyOptions {
  vaults?: string[]; // check these directories (copies of the sink) instead of the dir: vaults the ledger names
}

export async function verifyCustody(dataDir: string, opts: VerifyCustodyOptions = {}): Promise<CustodyReport> {
  const dockKey = loadDockPublicKey(dataDir);
  const ledger = verifyLedgerFile(join(dataDir, 'ledger.jsonl'), dockKey);
  const byClip = new Map<string, LedgerEntry[]>();
  const enrolled = new Map<string, Set<string>>(); // serial -> key fingerprints ever enrolled
  const vaults = new Set<string>();
  for (const e of ledger.entries) {
    if (e.clipId) byClip.set(key(e.serial, e.clipId), [...(byClip.get(key(e.serial, e.clipId)) ?? []), e]);
    if (e.event === 'enrolled' && e.serial) enrolled.set(e.serial, new Set([...(enrolled.get(e.serial) ?? []), shown(e.details['fingerprint'])]));
    if (e.event === 'ledger_opened' && typeof e.details['sink'] === 'string' && e.details['sink'].startsWith('dir:')) vaults.add(e.details['sink'].slice(4));
  }
  // A data dir copied elsewhere (an evidence hand-over) still names the original path:
  // the copy's own vault is the one to check, even if the original still exists.
  const own = join(dataDir, 'vault');
  for (const v of [...vaults]) {
    if (v !== own && basename(v) === 'vault' && existsSync(own)) {
      vaults.delete(v);
      vaults.add(own);
    }
  }
  if (vaults.size === 0) vaults.add(own);
  if (opts.vaults?.length) {
    vaults.clear();
    for (const v of opts.vaults) vaults.add(v);
  }
  const remoteSinks = new Set<string>();
  let remote = 0;
  const lineBySeq = new Map<number, string>(ledger.entries.map((e) => [e.seq, canonicalJson(e)]));

  const objects: ClipProblem[] = [];
  const links = new Map<string, { seq: number; prevChain: string; chain: string; clipId: string }[]>();
  const addLink = (serial: string, l: { seq: number; prevChain: string; chain: string; clipId: string }): void => {
    const list = links.get(serial) ?? [];
    if (!list.some((x) => x.seq === l.seq)) list.push(l);
    links.set(serial, list);
  };
  const inVault = new Set<string>();
  let checked = 0;
  let bytes = 0;
  for (const vault of vaults) {
    if (!existsSync(vault)) continue;
    for (const serial of readdirSync(vault).sort()) {
      const dir = join(vault, serial);
      if (!statSync(dir).isDirectory()) continue;
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
        const clipId = f.slice(0, -5);
        const bad = (problem: string): void => void objects.push({ serial, clipId, problem });
        let sc: Sidecar;
        try {
          sc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Sidecar;
        } catch {
          bad('sidecar is not valid JSON');
          continue;
        }
        if (!sc || typeof sc !== 'object' || sc.format !== SIDECAR_FORMAT || !Array.isArray(sc.custody) || typeof sc.manifestCanonical !== 'string' || typeof sc.signature !== 'string' || typeof sc.devicePublicKeyPem !== 'string') {
          bad(`sidecar is not a ${SIDECAR_FORMAT} document (a field is missing or of the wrong type)`);
          inVault.add(key(serial, clipId));
          continue;
        }
        checked++;
        inVault.add(key(serial, clipId));
        const manifestBytes = Buffer.from(sc.manifestCanonical ?? '', 'latin1');
        let m;
        try {
          m = parseManifest(manifestBytes);
        } catch (err) {
          bad(`manifest: ${(err as Error).message}`);
          continue;
        }
        if (m.serial !== serial || m.clipId !== clipId) bad(`manifest names ${m.serial}/${m.clipId}, but the sidecar is filed as ${serial}/${clipId}`);
        const objectPath = join(dir, `${clipId}.${m.container}`);
        if (!existsSync(objectPath)) bad(`the clip file ${objectPath} is missing`);
        else {
          const h = await sha256File(objectPath);
          bytes += h.bytes;
          if (h.sha256 !== m.sha256) bad(`the clip file hashes to ${h.sha256}, not the signed manifest's ${m.sha256}`);
          if (h.bytes !== m.size) bad(`the clip file has ${h.bytes} bytes, the manifest says ${m.size}`);
        }
        let raw: Buffer | undefined;
        try {
          raw = spkiToRawEd25519(createPublicKey(sc.devicePublicKeyPem).export({ type: 'spki', format: 'der' }));
        } catch {
          bad('the sidecar has no readable device public key');
        }
        if (raw) {
          if (!verifyManifestSignature(manifestBytes, Buffer.from(sc.signature ?? '', 'base64'), raw)) bad("the camera's signature over the manifest does not verify");
          const fp = createHash('sha256').update(raw).digest('hex');
          if (!enrolled.get(serial)?.has(fp)) bad(`the device key in the sidecar (sha256 ${fp.slice(0, 16)}…) is not one the ledger shows enrolled for ${serial}`);
        }
        const events = byClip.get(key(serial, clipId)) ?? [];
        // The sidecar carries every ledger line about this clip up to its last one, in order.
        const lastSeq = Math.max(0, ...sc.custody.map((l) => (typeof l?.seq === 'number' ? l.seq : 0)));
        const expected = events.filter((e) => e.seq <= lastSeq).map((e) => canonicalJson(e));
        const carried = sc.custody.map((l) => {
          try {
            return canonicalJson(l);
          } catch {
            return '(not canonical)';
          }
        });
        for (const [i, line] of carried.entries()) {
          const seq = (sc.custody[i] as { seq?: unknown } | null)?.seq;
          if (typeof seq !== 'number' || lineBySeq.get(seq) !== line) bad(`the sidecar's custody line ${i + 1} (seq ${String(seq)}) is not the ledger's line`);
        }
        if (carried.length !== expected.length || carried.some((l, i) => l !== expected[i])) bad(`the sidecar carries ${carried.length} custody lines, the ledger has ${expected.length} for this clip up to seq ${lastSeq}: lines were removed or added`);
        const stored = events.find((e) => e.event === 'stored' && e.details['sha256'] === m.sha256);
        if (!stored) bad('the ledger has no "stored" event with this hash for this clip');
        const released = events.find((e) => e.event === 'released');
        if (released && (!stored || released.seq < stored.seq)) bad(`released (ledger seq ${released.seq}) before it was stored with a checked hash`);
        addLink(serial, { seq: m.seq, prevChain: m.prevChain, chain: m.chain, clipId });
      }
    }
  }

  const quarantined: CustodyReport['quarantined'] = [];
  const releasedClips = new Set<string>();
  const missing: ClipProblem[] = [];
  const gapsRecorded = new Set<string>();
  for (const [k, events] of byClip) {
    const [serial, clipId] = k.split('/') as [string, string];
    for (const e of events) {
      if (e.event === 'chain_gap') gapsRecorded.add(k);
      if (e.event === 'released') releasedClips.add(k);
      if (e.event === 'quarantined' && !quarantined.some((q) => q.serial === serial && q.clipId === clipId)) quarantined.push({ serial, clipId, reason: `${shown(e.details['check'])}: ${shown(e.details['reason'])}` });
      if ((e.event === 'quarantined' || e.event === 'verified') && typeof e.details['chain'] === 'string' && typeof e.details['seq'] === 'number' && typeof e.details['prevChain'] === 'string') {
        addLink(serial, { seq: e.details['seq'], prevChain: e.details['prevChain'], chain: e.details['chain'], clipId });
      }
    }
    const stored = events.filter((e) => e.event === 'stored');
    if (stored.length > 0 && !inVault.has(k)) {
      const where = String(stored.at(-1)!.details['location'] ?? '');
      if (where.startsWith('s3://') && !opts.vaults?.length) {
        remote++;
        remoteSinks.add(String(stored.at(-1)!.details['sink'] ?? ''));
      } else missing.push({ serial, clipId, problem: `the ledger says it was stored (${where}), but it is not in the vault` });
    }
  }

  // Quarantined clips are evidence too: the file must still be what the dock quarantined.
  for (const q of quarantined) {
    const qe = byClip.get(key(q.serial, q.clipId))?.filter((e) => e.event === 'quarantined').at(-1);
    const want = qe ? String(qe.details['diskSha256']) : '';
    const dir = join(dataDir, 'quarantine', q.serial);
    const file = existsSync(dir) ? readdirSync(dir).find((f) => f.startsWith(`${q.clipId}.`) && !f.endsWith('.reason.json')) : undefined;
    if (!file) missing.push({ serial: q.serial, clipId: q.clipId, problem: 'quarantined, but its file is not in quarantine/' });
    else if ((await sha256File(join(dir, file))).sha256 !== want) missing.push({ serial: q.serial, clipId: q.clipId, problem: `the quarantined file no longer hashes to ${want.slice(0, 16)}…, the hash recorded when it was quarantined` });
  }

  const gaps: ClipProblem[] = [];
  const chainProblems: ClipProblem[] = [];
  for (const [serial, list] of links) {
    list.sort((a, b) => a.seq - b.seq);
    let prev: { seq: number; chain: string } = { seq: 0, chain: GENESIS_CHAIN };
    for (const l of list) {
      if (l.prevChain !== prev.chain) {
        const what = l.seq === prev.seq + 1 ? `prevChain does not match clip seq ${prev.seq}` : `clips seq ${prev.seq + 1}..${l.seq - 1} are missing before it`;
        if (gapsRecorded.has(key(serial, l.clipId))) gaps.push({ serial, clipId: l.clipId, problem: `chain gap (recorded at ingest): ${what}` });
        else chainProblems.push({ serial, clipId: l.clipId, problem: `chain broken and not recorded in the ledger: ${what}` });
      }
      prev = l;
    }
  }

  const allObjects = [...objects, ...missing];
  return {
    ok: ledger.ok && allObjects.length === 0 && chainProblems.length === 0,
    dataDir,
    ledger: { entries: ledger.entries.length, problems: ledger.problems },
    objects: { checked, bytes, problems: allObjects },
    chain: { gaps, problems: chainProblems },
    quarantined,
    released: releasedClips.size,
    remote: { clips: remote, sinks: [...remoteSinks].sort() },
    dockFingerprint: createHash('sha256').update(spkiToRawEd25519(dockKey.export({ type: 'spki', format: 'der' }))).digest('hex'),
  };
}
