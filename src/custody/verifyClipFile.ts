/**
 * `dockside verify FILE`: one clip file against its sidecar, offline, with nothing
 * else (no data directory, no ledger): what a prosecutor or a defence expert can
 * check from a vault copy alone (docs/custody.md §10, §11).
 *
 *   file      its length and SHA-256 are the signed manifest's size and sha256
 *   manifest  manifestCanonical is a canonical, valid manifest, the sidecar's copies
 *             of it agree, and its chain value recomputes
 *   device    the camera's Ed25519 signature over manifestCanonical verifies
 *   custody   every custody line is signed by the sidecar's dock key, is about this
 *             clip, and they say listed, pulled, verified (this sha256, chain and
 *             device key), stored (this sha256), released only after stored
 *
 * What a sidecar cannot show (its lines link to other clips' lines, which only the
 * ledger has; who holds the keys) is listed in `notChecked`, never passed over.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { canonicalJson } from './canonicalJson.js';
import { checkLedgerLine, shown, type LedgerEntry } from './Ledger.js';
import { computeChain, ManifestSchema, verifyManifestSignature, type Manifest } from './manifest.js';
import { keyFingerprint, rawEd25519FromPem, sidecarShapeProblem, type Sidecar } from './sidecar.js';
import { sha256File } from './verifyCustody.js';
import { DockError } from '../errors.js';

export interface ClipFileCheck {
  check: string; // stable name: sidecar, manifest, sidecar copy, chain, size, sha256, device signature, dock key, custody ...
  ok: boolean;
  detail: string;
}

export interface ClipFileReport {
  ok: boolean;
  file: string;
  sidecar: string;
  serial: string | null;
  clipId: string | null;
  checks: ClipFileCheck[];
  notChecked: string[]; // what a sidecar alone cannot establish, and where to check it
  deviceKeyFingerprint: string | null;
  dockFingerprint: string | null;
}

/** `<dir>/<file name without its extension>.json`: where the vault puts a clip's sidecar. */
export function defaultSidecarPath(file: string): string {
  return join(dirname(file), `${basename(file, extname(file))}.json`);
}

const short = (hex: string): string => `${hex.slice(0, 16)}…`;

function readOrExplain(path: string, what: string, hint: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DockError('CUSTODY_UNREADABLE', `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. ${hint}`, { path });
  }
}

/** Reads the sidecar, hashes the clip file, and checks one against the other. Throws DockError when either cannot be read. */
export async function verifyClipFile(file: string, sidecarPath = defaultSidecarPath(file)): Promise<ClipFileReport> {
  if (sidecarPath === file) throw new DockError('CLI_USAGE', `${file} is a sidecar; give the clip file (the .mp4 or .bin beside it)`, { file });
  try {
    statSync(file); // the clip first: a wrong path is reported as that, not as a missing sidecar
  } catch (err) {
    throw new DockError('CUSTODY_UNREADABLE', `cannot read the clip file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. Check the path and that you may read it`, { path: file });
  }
  const sidecarText = readOrExplain(sidecarPath, 'sidecar', 'Give its path with --sidecar (it is <clipId>.json beside the clip in the vault)').toString('utf8');
  let fileHash: { sha256: string; bytes: number };
  try {
    fileHash = await sha256File(file);
  } catch (err) {
    throw new DockError('CUSTODY_UNREADABLE', `cannot read the clip file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. Check the path and that you may read it`, { path: file });
  }
  return checkClipAgainstSidecar({ file, sidecar: sidecarPath, fileHash, sidecarText });
}

/** The checks themselves, given the clip file's hash and length and the sidecar's text. */
export function checkClipAgainstSidecar(args: { file: string; sidecar: string; fileHash: { sha256: string; bytes: number }; sidecarText: string }): ClipFileReport {
  const checks: ClipFileCheck[] = [];
  const add = (check: string, ok: boolean, detail: string): void => void checks.push({ check, ok, detail });
  const report = (sc?: Sidecar, m?: Manifest, deviceFp: string | null = null, dockFp: string | null = null): ClipFileReport => ({
    ok: checks.every((c) => c.ok),
    file: args.file,
    sidecar: args.sidecar,
    serial: m?.serial ?? sc?.clip.serial ?? null,
    clipId: m?.clipId ?? sc?.clip.clipId ?? null,
    checks,
    notChecked: notChecked(m?.serial ?? sc?.clip.serial ?? 'this camera', deviceFp, dockFp),
    deviceKeyFingerprint: deviceFp,
    dockFingerprint: dockFp,
  });

  let doc: unknown;
  try {
    doc = JSON.parse(args.sidecarText);
  } catch {
    add('sidecar', false, 'the sidecar is not valid JSON');
    return report();
  }
  const shape = sidecarShapeProblem(doc);
  if (shape) {
    add('sidecar', false, `not a dockside-sidecar-v1 document: ${shape}`);
    return report();
  }
  const sc = doc as Sidecar;
  add('sidecar', true, `${sc.format}, ${sc.custody.length} custody line(s)`);

  // The manifest: the signed bytes, parsed. Each property is its own line of the report.
  const manifestBytes = Buffer.from(sc.manifestCanonical, 'latin1');
  let m: Manifest | undefined;
  let json: unknown;
  try {
    json = JSON.parse(sc.manifestCanonical);
  } catch {
    add('manifest', false, 'manifestCanonical is not valid JSON');
  }
  if (json !== undefined) {
    const parsed = ManifestSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      add('manifest', false, `manifestCanonical is not a valid manifest: field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    } else {
      m = parsed.data;
      const canonical = canonicalJson(m) === sc.manifestCanonical;
      add('manifest', canonical, canonical ? `canonical dockside-manifest-v1 (${manifestBytes.length} bytes), ${m.serial} clip ${m.clipId} seq ${m.seq}` : 'manifestCanonical is not in canonical form (docs/custody.md §2.1): these are not bytes a camera signs');
    }
  }
  if (m) {
    const mm = m;
    const copy: string[] = [];
    let sameCopy = false;
    try {
      sameCopy = canonicalJson(sc.manifest) === canonicalJson(mm);
    } catch {
      // an unencodable copy differs
    }
    if (!sameCopy) copy.push('the sidecar\'s "manifest" differs from the signed bytes');
    const clip = { serial: mm.serial, clipId: mm.clipId, file: `${mm.clipId}.${mm.container}`, size: mm.size, sha256: mm.sha256 };
    for (const k of Object.keys(clip) as (keyof typeof clip)[]) if (sc.clip[k] !== clip[k]) copy.push(`clip.${k} is ${JSON.stringify(sc.clip[k])}, the signed manifest says ${JSON.stringify(clip[k])}`);
    add('sidecar copy', copy.length === 0, copy.length === 0 ? 'the sidecar\'s "manifest" and "clip" agree with the signed bytes' : `${copy.join('; ')} (unsigned copies: the signed bytes are authoritative)`);
    const chain = computeChain(mm);
    add('chain', chain === mm.chain, chain === mm.chain ? `${short(mm.chain)} recomputes from prevChain ${short(mm.prevChain)}, sha256 and the other fields` : `the manifest says chain ${short(mm.chain)}, its fields give ${short(chain)}`);
  }

  // The file against the signed size and hash (the unsigned copy only when there is no signed manifest).
  const want = m ? { size: m.size, sha256: m.sha256, from: "the signed manifest's" } : { size: sc.clip.size, sha256: sc.clip.sha256, from: "the sidecar's unsigned clip" };
  const renamed = basename(args.file) !== sc.clip.file ? ` (the sidecar names the file ${sc.clip.file})` : '';
  add('size', args.fileHash.bytes === want.size, args.fileHash.bytes === want.size ? `${args.fileHash.bytes} bytes, as ${want.from} size${renamed}` : `the file has ${args.fileHash.bytes} bytes, ${want.from} size is ${want.size}${renamed}`);
  add('sha256', args.fileHash.sha256 === want.sha256, args.fileHash.sha256 === want.sha256 ? `${args.fileHash.sha256} equals ${want.from} sha256` : `the file hashes to ${args.fileHash.sha256}, ${want.from} sha256 is ${want.sha256}: the file is not the clip the camera recorded`);

  let deviceFp: string | null = null;
  try {
    const raw = rawEd25519FromPem(sc.devicePublicKeyPem);
    deviceFp = keyFingerprint(raw);
    const ok = verifyManifestSignature(manifestBytes, Buffer.from(sc.signature, 'base64'), raw);
    add('device signature', ok, ok ? `the camera's Ed25519 signature over manifestCanonical verifies with devicePublicKeyPem (sha256 ${short(deviceFp)})` : `the camera's signature over manifestCanonical does not verify with devicePublicKeyPem (sha256 ${short(deviceFp)}): the manifest was altered or signed by another key`);
  } catch {
    add('device signature', false, 'devicePublicKeyPem is not an Ed25519 public key');
  }

  let dockKey: KeyObject | undefined;
  let dockFp: string | null = null;
  try {
    dockFp = keyFingerprint(rawEd25519FromPem(sc.dock.publicKeyPem));
    dockKey = createPublicKey(sc.dock.publicKeyPem);
    add('dock key', dockFp === sc.dock.fingerprint, dockFp === sc.dock.fingerprint ? `ed25519 sha256:${dockFp}` : `dock.publicKeyPem has fingerprint ${dockFp}, the sidecar says ${sc.dock.fingerprint}`);
  } catch {
    add('dock key', false, 'dock.publicKeyPem is not an Ed25519 public key');
  }

  custodyChecks(sc, m, deviceFp, dockKey, add);
  return report(sc, m, deviceFp, dockFp);
}

function custodyChecks(sc: Sidecar, m: Manifest | undefined, deviceFp: string | null, dockKey: KeyObject | undefined, add: (check: string, ok: boolean, detail: string) => void): void {
  const lines = sc.custody as unknown[];
  const entries: LedgerEntry[] = [];
  const sigProblems: string[] = [];
  lines.forEach((l, i) => {
    let line: string;
    try {
      line = canonicalJson(l);
    } catch {
      sigProblems.push(`line ${i + 1} has no canonical form`);
      return;
    }
    if (!dockKey) {
      if (l && typeof l === 'object' && !Array.isArray(l)) entries.push(withDetails(l as LedgerEntry));
      return;
    }
    const { entry, problems } = checkLedgerLine(line, dockKey);
    if (entry) entries.push(withDetails(entry));
    for (const p of problems) sigProblems.push(`line ${i + 1}${entry ? ` (seq ${shown(entry.seq)} ${shown(entry.event)})` : ''}: ${p}`);
  });
  if (!dockKey) add('custody signatures', false, 'no dock key to check the custody lines with');
  else if (lines.length === 0) add('custody signatures', false, 'the sidecar carries no custody lines');
  else add('custody signatures', sigProblems.length === 0, sigProblems.length === 0 ? `${lines.length} line(s), seq ${entries.map((e) => shown(e.seq)).join(', ')}, each signed by the dock key` : sigProblems.join('; '));

  const serial = m?.serial ?? sc.clip.serial;
  const clipId = m?.clipId ?? sc.clip.clipId;
  const about: string[] = [];
  let lastSeq = 0;
  for (const e of entries) {
    if (e.serial !== serial || e.clipId !== clipId) about.push(`seq ${shown(e.seq)} is about ${shown(e.serial)}/${shown(e.clipId)}`);
    if (e.v !== 1) about.push(`seq ${shown(e.seq)} has version ${shown(e.v)}`);
    if (!Number.isSafeInteger(e.seq) || e.seq <= lastSeq) about.push(`seq ${shown(e.seq)} does not come after seq ${lastSeq}`);
    if (typeof e.prev !== 'string' || !/^[0-9a-f]{64}$/.test(e.prev)) about.push(`seq ${shown(e.seq)} has no prev hash`);
    if (typeof e.seq === 'number') lastSeq = Math.max(lastSeq, e.seq);
  }
  add('custody clip', entries.length > 0 && about.length === 0, entries.length === 0 ? 'no custody line could be read' : about.length === 0 ? `every line is about ${serial}/${clipId}, in increasing seq` : about.join('; '));

  const first = (event: string): LedgerEntry | undefined => entries.find((e) => e.event === event);
  const order = ['listed', 'pulled', 'verified', 'stored'].map((event) => ({ event, e: first(event) }));
  const missing = order.filter((o) => !o.e).map((o) => o.event);
  const outOfOrder = order.some((o, i) => i > 0 && o.e && order[i - 1]!.e && o.e.seq < order[i - 1]!.e!.seq);
  const seqs = order.map((o) => `${o.event} ${o.e ? o.e.seq : '-'}`).join(', ');
  add('custody order', missing.length === 0 && !outOfOrder, missing.length > 0 ? `no ${missing.join(', ')} line` : outOfOrder ? `the steps are out of order (${seqs})` : seqs);

  if (!m) {
    add('custody verified', false, 'no valid signed manifest to compare the dock\'s "verified" line with');
    add('custody stored', false, 'no valid signed manifest to compare the dock\'s "stored" line with');
    return;
  }
  const verified = entries.filter((e) => e.event === 'verified');
  const vBad: string[] = [];
  for (const e of verified) {
    const d = e.details;
    if (d['sha256'] !== m.sha256) vBad.push(`seq ${shown(e.seq)} names sha256 ${shown(d['sha256'])}`);
    if (d['chain'] !== m.chain) vBad.push(`seq ${shown(e.seq)} names chain ${shown(d['chain'])}`);
    if (d['prevChain'] !== undefined && d['prevChain'] !== m.prevChain) vBad.push(`seq ${shown(e.seq)} names prevChain ${shown(d['prevChain'])}`);
    if (d['seq'] !== undefined && d['seq'] !== m.seq) vBad.push(`seq ${shown(e.seq)} names clip seq ${shown(d['seq'])}`);
    if (d['deviceKey'] !== undefined && d['deviceKey'] !== deviceFp) vBad.push(`seq ${shown(e.seq)} says the dock checked device key ${shown(d['deviceKey'])}, not the sidecar's ${shown(deviceFp)}`);
  }
  const deviceNamed = verified.some((e) => e.details['deviceKey'] === deviceFp);
  add(
    'custody verified',
    verified.length > 0 && vBad.length === 0,
    verified.length === 0 ? 'no "verified" line' : vBad.length > 0 ? vBad.join('; ') : `the dock's "verified" line (seq ${verified.map((e) => e.seq).join(', ')}) names this sha256 and chain${deviceNamed ? ' and the sidecar\'s device key' : ' (it does not name the device key)'}`,
  );

  const stored = entries.filter((e) => e.event === 'stored' && e.details['sha256'] === m.sha256);
  const sBad: string[] = [];
  for (const e of entries.filter((x) => x.event === 'stored' && x.details['sha256'] !== m.sha256)) sBad.push(`seq ${shown(e.seq)} "stored" names sha256 ${shown(e.details['sha256'])}`);
  for (const e of entries.filter((x) => x.event === 'released')) {
    if (!stored.some((s) => s.seq < e.seq)) sBad.push(`"released" (seq ${shown(e.seq)}) comes before any "stored" with this hash`);
    if (e.details['sha256'] !== m.sha256) sBad.push(`"released" (seq ${shown(e.seq)}) names sha256 ${shown(e.details['sha256'])}`);
  }
  const released = entries.filter((e) => e.event === 'released');
  add(
    'custody stored',
    stored.length > 0 && sBad.length === 0,
    stored.length === 0 ? 'no "stored" line with this sha256' : sBad.length > 0 ? sBad.join('; ') : `stored with this sha256 (seq ${stored.map((e) => e.seq).join(', ')})${released.length ? `, released after it (seq ${released.map((e) => e.seq).join(', ')})` : ', not yet released'}`,
  );
}

/** A line whose details are not an object (a damaged sidecar) is read as having none, so the checks report it instead of throwing. */
/**
 * A custody line as the checks below read it: details always an object, seq always a
 * number (NaN when the line's is anything else, which the order check then reports), so
 * a hostile line is reported, never coerced into a crash.
 */
function withDetails(e: LedgerEntry): LedgerEntry {
  const details = e.details && typeof e.details === 'object' && !Array.isArray(e.details) ? e.details : {};
  return { ...e, details, seq: typeof e.seq === 'number' ? e.seq : NaN };
}

function notChecked(serial: string, deviceFp: string | null, dockFp: string | null): string[] {
  return [
    `that the device key (sha256 ${deviceFp ?? '?'}) is the one enrolled for ${serial}: the dock's "verified" line names the key it checked, but the "enrolled" line is in the ledger, not here; compare with it or with the enrollment record`,
    `who holds the dock key: compare its fingerprint ${dockFp ?? '?'} with a record of the dock kept apart from it (docs/custody.md §1)`,
    "that no custody line is missing or was added: each line's prev links to the ledger line before it, which is usually another clip's; `dockside custody export` gives a bundle with that range of the ledger, `dockside custody verify` checks the whole ledger",
  ];
}
