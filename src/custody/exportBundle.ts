/**
 * `dockside custody export CLIP --out DIR`: a self-contained bundle about one clip,
 * for a prosecutor or a defence expert, that they check with sha256sum, openssl and
 * jq alone, following the README.md written into it (docs/custody.md §12).
 *
 *   <clipId>.<ext>       the clip, from the vault (or from quarantine/, NOT STORED)
 *   <clipId>.json        its sidecar (a quarantined clip has <clipId>.reason.json)
 *   device.pem dock.pem  the camera's and the dock's public keys
 *   custody.jsonl        the clip's own ledger lines, byte for byte
 *   enrollment.jsonl     the ledger's enrolled/revoked lines for the camera (signed)
 *   ledger-range.jsonl   the consecutive ledger lines from the one before the clip's
 *                        first line to its last: every link of the clip's lines
 *   bundle.json          what was exported, from where, the ledger head at the time
 *   README.md            the commands, written out for these file names
 *   SHA256SUMS           of every other file
 *
 * Reads only ledger.jsonl, dock.pub.pem and the vault, never the state store and
 * never the data directory's lock, so it runs beside a running daemon: the ledger is
 * append-only and only complete lines (up to the last LF) are taken. The bundle is
 * built in a temporary directory beside --out and renamed into place whole, so an
 * interrupted export leaves no half bundle behind.
 */
import { constants as fsConstants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { canonicalJson } from './canonicalJson.js';
import { checkLedgerLines, lineHash, readTail, type LedgerEntry } from './Ledger.js';
import { DOCK_PUB_FILE, loadDockPublicKey } from './dockKey.js';
import { keyFingerprint, rawEd25519FromPem, type Sidecar } from './sidecar.js';
import { checkClipAgainstSidecar, type ClipFileCheck } from './verifyClipFile.js';
import { sha256File } from './verifyCustody.js';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../durableFs.js';
import { DockError } from '../errors.js';

export const BUNDLE_FORMAT = 'dockside-export-v1';

export interface ExportOptions {
  dataDir: string;
  clipId: string;
  serial?: string;
  vault?: string; // a local copy of the sink, laid out <serial>/<clipId>.<ext> (needed for an s3:// sink)
  out: string;
  tool: string; // e.g. "dockside 0.1.0", recorded in bundle.json
  nowMs?: number;
}

export interface BundleFile {
  name: string;
  bytes: number;
  sha256: string;
  what: string;
}

export interface ExportResult {
  ok: boolean; // every check on the bundle as written passed
  out: string;
  serial: string;
  clipId: string;
  status: 'stored' | 'released' | 'quarantined';
  source: string; // where the clip file was copied from
  reason: string | null; // why it was quarantined
  files: BundleFile[];
  ledger: { rangeFromSeq: number; rangeToSeq: number; clipSeqs: number[]; headSeq: number; headHash: string };
  checks: ClipFileCheck[];
  dockFingerprint: string;
}

interface Line {
  text: string;
  entry: LedgerEntry | undefined;
}

const about = (l: Line, serial: string, clipId: string): boolean => l.entry?.serial === serial && l.entry.clipId === clipId;

/** The complete lines of the ledger as it is now (a line being appended is not one yet). */
function snapshotLedger(path: string): Line[] {
  return readTail(path, Number.MAX_SAFE_INTEGER).lines.map((text) => {
    try {
      const e = JSON.parse(text) as unknown;
      return { text, entry: e && typeof e === 'object' && !Array.isArray(e) ? (e as LedgerEntry) : undefined };
    } catch {
      return { text, entry: undefined };
    }
  });
}

function findClip(lines: Line[], clipId: string, serial: string | undefined, dataDir: string): string {
  const serials = [...new Set(lines.filter((l) => l.entry?.clipId === clipId && typeof l.entry.serial === 'string').map((l) => l.entry!.serial!))].sort();
  if (serial !== undefined) {
    if (serials.includes(serial)) return serial;
    const others = serials.length ? ` (the ledger has it from ${serials.join(', ')})` : '';
    throw new DockError('CUSTODY_NOT_FOUND', `the ledger of ${dataDir} has no clip ${clipId} from camera ${serial}${others}; check the clip id and --serial (\`dockside custody verify\` lists what the vault holds)`, { clipId, serial });
  }
  if (serials.length === 0) throw new DockError('CUSTODY_NOT_FOUND', `the ledger of ${dataDir} (${lines.length} lines) has no clip ${clipId}; check the clip id (the vault holds <serial>/<clipId>.<ext>) and --data-dir`, { clipId });
  if (serials.length > 1) throw new DockError('CLI_USAGE', `${serials.length} cameras have a clip ${clipId}: ${serials.join(', ')}; say which with --serial SERIAL`, { clipId, serials });
  return serials[0]!;
}

/** Where the stored clip is on this machine: --vault, else the dir: location the ledger recorded (or the copied data dir's own vault). */
function storedSource(stored: LedgerEntry, serial: string, clipId: string, dataDir: string, vault: string | undefined): { file: string; sidecar: string } {
  const location = String(stored.details['location'] ?? '');
  const name = `${clipId}${extname(location) || '.bin'}`;
  if (vault !== undefined) return { file: join(vault, serial, name), sidecar: join(vault, serial, `${clipId}.json`) };
  if (location.startsWith('s3://')) {
    const sink = String(stored.details['sink'] ?? location.slice(0, location.lastIndexOf(`/${serial}/`)));
    throw new DockError(
      'CLI_USAGE',
      `${serial}/${clipId} is stored in ${location}, not on this machine. Copy it and give the copy with --vault DIR: \`aws s3 sync ${sink} DIR\` (or only this clip: \`aws s3 cp ${location} DIR/${serial}/\` and \`aws s3 cp ${location.slice(0, -extname(location).length)}.json DIR/${serial}/\`)`,
      { location },
    );
  }
  // A data dir copied elsewhere still names the original vault: its own copy is the one to export (as custody verify does).
  const own = join(dataDir, 'vault', serial, name);
  const file = basename(dirname(dirname(location))) === 'vault' && existsSync(own) ? own : location;
  return { file, sidecar: join(dirname(file), `${clipId}.json`) };
}

function readEvidence(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DockError('CUSTODY_NOT_FOUND', `cannot read ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); if the vault was moved, give a copy of it with --vault DIR (laid out <serial>/<clipId>.<ext>)`, { path });
  }
}

function refuseNonEmpty(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new DockError('CLI_USAGE', `--out ${out} exists and is not a directory; give a new or empty directory`, { out });
  const present = readdirSync(out);
  if (present.length > 0) throw new DockError('CLI_USAGE', `--out ${out} already holds ${present.length} file(s) (${present.slice(0, 3).join(', ')}${present.length > 3 ? ', …' : ''}); an export never overwrites anything: give a new or empty directory`, { out });
}

export async function exportBundle(o: ExportOptions): Promise<ExportResult> {
  const ledgerPath = join(o.dataDir, 'ledger.jsonl');
  if (!existsSync(ledgerPath)) throw new DockError('CLI_USAGE', `${o.dataDir} is not a dock data directory (no ledger.jsonl); give the dock's --data-dir`, { dataDir: o.dataDir });
  refuseNonEmpty(o.out);
  const dockKey = loadDockPublicKey(o.dataDir);
  const dockPem = readFileSync(join(o.dataDir, DOCK_PUB_FILE));
  const dockFingerprint = keyFingerprint(rawEd25519FromPem(dockPem.toString('latin1')));

  let lines = snapshotLedger(ledgerPath);
  const serial = findClip(lines, o.clipId, o.serial, o.dataDir);
  const clipId = o.clipId;
  const own = (): LedgerEntry[] => lines.filter((l) => about(l, serial, clipId)).map((l) => l.entry!);
  const quarantined = own().filter((e) => e.event === 'quarantined').at(-1);
  const stored = own().filter((e) => e.event === 'stored').at(-1);
  if (!quarantined && !stored) {
    const last = own().at(-1)!;
    throw new DockError('CUSTODY_NOT_FOUND', `${serial}/${clipId} is not in the evidence store yet (its last custody step is "${last.event}", ledger seq ${last.seq}); it can be exported once it is stored: see \`dockside queue list --all\``, { serial, clipId, lastEvent: last.event });
  }

  // The files, read before the ledger is read again: the sidecar is rewritten after the ledger line it adds (released).
  let source: string;
  let second: { name: string; bytes: Buffer; what: string };
  let sidecar: Sidecar | undefined;
  if (quarantined) {
    const dir = join(o.dataDir, 'quarantine', serial);
    const name = existsSync(dir) ? readdirSync(dir).find((f) => f.startsWith(`${clipId}.`) && !f.endsWith('.reason.json') && !f.startsWith('.')) : undefined;
    if (!name) throw new DockError('CUSTODY_NOT_FOUND', `${serial}/${clipId} was quarantined (ledger seq ${quarantined.seq}), but its file is not in ${dir}; it must never be deleted: look for it, and run \`dockside custody verify\``, { serial, clipId });
    source = join(dir, name);
    second = { name: `${clipId}.reason.json`, bytes: readEvidence(join(dir, `${clipId}.reason.json`), 'the quarantine reason'), what: "the dock's quarantine record (unsigned; the signed one is the quarantined line)" };
  } else {
    const src = storedSource(stored!, serial, clipId, o.dataDir, o.vault);
    source = src.file;
    if (!existsSync(source)) throw new DockError('CUSTODY_NOT_FOUND', `the ledger says ${serial}/${clipId} was stored at ${String(stored!.details['location'])}, but there is no ${source}; give a copy of the vault with --vault DIR, and run \`dockside custody verify\``, { path: source });
    const bytes = readEvidence(src.sidecar, 'the sidecar');
    try {
      sidecar = JSON.parse(bytes.toString('utf8')) as Sidecar;
    } catch {
      sidecar = undefined; // exported as found; the checks below say it is not a sidecar
    }
    second = { name: `${clipId}.json`, bytes, what: "the sidecar: the camera's signed manifest and signature, the keys, the clip's custody lines" };
  }
  const carried = Array.isArray(sidecar?.custody) ? sidecar.custody.map((e) => (typeof e?.seq === 'number' ? e.seq : 0)) : [];
  if (Math.max(0, ...carried) > (lines.at(-1)?.entry?.seq ?? 0)) lines = snapshotLedger(ledgerPath);

  const first = lines.findIndex((l) => about(l, serial, clipId));
  const last = lines.findLastIndex((l) => about(l, serial, clipId));
  const from = Math.max(0, first - 1); // the line before the clip's first: its hash is what that line's prev must be
  const range = lines.slice(from, last + 1);
  const custody = range.filter((l) => about(l, serial, clipId));
  const enrollment = lines.slice(0, last + 1).filter((l) => l.entry?.serial === serial && (l.entry.event === 'enrolled' || l.entry.event === 'revoked'));
  const head = lines.at(-1)!;
  const jsonl = (ls: Line[]): string => ls.map((l) => `${l.text}\n`).join('');
  const seqOf = (l: Line | undefined): number => (typeof l?.entry?.seq === 'number' ? l.entry.seq : 0);
  const ext = extname(source);
  const clipName = `${clipId}${ext}`;
  const status: ExportResult['status'] = quarantined ? 'quarantined' : own().some((e) => e.event === 'released' && e.seq > stored!.seq) ? 'released' : 'stored';
  const ctx: ReadmeContext = {
    serial,
    clipId,
    clipName,
    sidecarName: second.name,
    status,
    location: quarantined ? source : String(stored!.details['location']),
    receipt: stored ? String(stored.details['receipt'] ?? '') : '',
    reason: quarantined ? `${String(quarantined.details['check'])}: ${String(quarantined.details['reason'])}` : '',
    rangeFrom: seqOf(range[0]),
    rangeTo: seqOf(range.at(-1)),
    firstPrev: String(range[0]?.entry?.prev ?? ''),
    rangeLastHash: lineHash(range.at(-1)!.text),
    clipSeqs: custody.map(seqOf),
    headSeq: seqOf(head),
    headHash: lineHash(head.text),
    dockFingerprint,
    deviceFingerprint: '',
    sha256: stored ? String(stored.details['sha256']) : String(quarantined!.details['diskSha256']),
    sidecarLines: carried.length,
    exportedAtMs: o.nowMs ?? Date.now(),
  };
  const files: { name: string; bytes: Buffer; what: string }[] = [second];
  if (sidecar && typeof sidecar.devicePublicKeyPem === 'string') {
    files.push({ name: 'device.pem', bytes: Buffer.from(sidecar.devicePublicKeyPem, 'latin1'), what: "the camera's public key (the sidecar's devicePublicKeyPem)" });
    try {
      ctx.deviceFingerprint = keyFingerprint(rawEd25519FromPem(sidecar.devicePublicKeyPem));
    } catch {
      ctx.deviceFingerprint = '(not an Ed25519 key)';
    }
  }
  files.push(
    { name: 'dock.pem', bytes: dockPem, what: "the dock's public key (DATA_DIR/dock.pub.pem)" },
    { name: 'custody.jsonl', bytes: Buffer.from(jsonl(custody)), what: "this clip's ledger lines, byte for byte" },
    { name: 'enrollment.jsonl', bytes: Buffer.from(jsonl(enrollment)), what: `the ledger's enrolled/revoked lines for ${serial}` },
    { name: 'ledger-range.jsonl', bytes: Buffer.from(jsonl(range)), what: `ledger lines seq ${ctx.rangeFrom} to ${ctx.rangeTo}, consecutive` },
  );

  // Build beside --out, then rename into place whole.
  const parent = dirname(o.out);
  await mkdirDurable(parent);
  const tmp = await mkdtemp(join(parent, `.${basename(o.out)}.partial-`));
  try {
    await copyDurable(source, join(tmp, clipName));
    const written: BundleFile[] = [];
    const record = async (name: string, what: string): Promise<void> => void written.push({ name, what, ...(await sha256File(join(tmp, name))) });
    await record(clipName, status === 'quarantined' ? 'the clip, from quarantine/ (NOT STORED)' : 'the clip, from the evidence store');
    for (const f of files) {
      await writeFileDurable(join(tmp, f.name), f.bytes, 0o444);
      await record(f.name, f.what);
    }
    const bundle = {
      format: BUNDLE_FORMAT,
      exportedAtMs: ctx.exportedAtMs,
      tool: o.tool,
      dataDir: o.dataDir,
      serial,
      clipId,
      status,
      source,
      ...(quarantined ? { quarantine: { seq: quarantined.seq, reason: ctx.reason } } : { stored: { seq: stored!.seq, location: ctx.location, receipt: ctx.receipt, sha256: ctx.sha256 } }),
      ledger: { rangeFromSeq: ctx.rangeFrom, rangeToSeq: ctx.rangeTo, rangeFirstPrev: ctx.firstPrev, rangeLastHash: ctx.rangeLastHash, clipSeqs: ctx.clipSeqs, headSeq: ctx.headSeq, headHash: ctx.headHash },
      dockFingerprint,
      deviceFingerprint: ctx.deviceFingerprint || null,
      files: written.map(({ name, bytes, sha256 }) => ({ name, bytes, sha256 })),
    };
    await writeFileDurable(join(tmp, 'bundle.json'), `${JSON.stringify(bundle, null, 2)}\n`, 0o444);
    await record('bundle.json', 'what was exported, from where, and the ledger head then (unsigned)');
    await writeFileDurable(join(tmp, 'README.md'), readme(ctx, written), 0o444);
    await record('README.md', 'how to check this bundle');
    await writeFileDurable(join(tmp, 'SHA256SUMS'), written.map((f) => `${f.sha256}  ${f.name}\n`).join(''), 0o444);

    // The checks, on the bundle as written.
    const checks: ClipFileCheck[] = [];
    const clipHash = written[0]!;
    if (quarantined) {
      const ok = clipHash.sha256 === ctx.sha256;
      checks.push({ check: 'sha256', ok, detail: ok ? `${clipHash.sha256} is the hash the dock recorded when it quarantined the clip` : `the file hashes to ${clipHash.sha256}, the dock recorded ${ctx.sha256} when it quarantined it` });
    } else {
      checks.push(...checkClipAgainstSidecar({ file: join(o.out, clipName), sidecar: join(o.out, second.name), fileHash: clipHash, sidecarText: second.bytes.toString('utf8') }).checks);
      const pemOk = sidecar?.dock?.publicKeyPem === dockPem.toString('latin1');
      checks.push({ check: 'dock.pem', ok: pemOk, detail: pemOk ? "the data directory's dock.pub.pem is the sidecar's dock key" : "the data directory's dock.pub.pem is not the key in the sidecar" });
      const sidecarLines = Array.isArray(sidecar?.custody) ? sidecar.custody.map(canonicalOrNothing) : [];
      const inLedger = sidecarLines.every((l, i) => l !== undefined && custody[i]?.text === l);
      checks.push({ check: 'sidecar = ledger', ok: inLedger, detail: inLedger ? `the sidecar's ${sidecarLines.length} custody line(s) are the ledger's first ${sidecarLines.length} for this clip` : "the sidecar's custody lines are not the ledger's lines for this clip" });
    }
    const rangeCheck = checkLedgerLines(
      range.map((l) => l.text),
      dockKey,
      { seq: ctx.rangeFrom, prev: null },
      ctx.rangeFrom,
    );
    checks.push({
      check: 'ledger range',
      ok: rangeCheck.problems.length === 0,
      detail: rangeCheck.problems.length === 0 ? `seq ${ctx.rangeFrom}..${ctx.rangeTo} (${range.length} lines): consecutive, hash-linked, each signed by the dock key` : rangeCheck.problems.map((p) => `line ${p.line}: ${p.problem}`).join('; '),
    });

    await chmod(join(tmp, clipName), 0o444);
    await chmod(tmp, 0o755); // mkdtemp made it private; a bundle is made to be handed over
    await fsyncDir(tmp);
    try {
      await rename(tmp, o.out); // onto a missing or empty directory only: never over files
    } catch (err) {
      throw new DockError('CLI_USAGE', `cannot put the bundle at ${o.out} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): it must be a new or empty directory`, { out: o.out });
    }
    await fsyncDir(parent);
    return { ok: checks.every((c) => c.ok), out: o.out, serial, clipId, status, source, reason: quarantined ? ctx.reason : null, files: written, ledger: bundle.ledger, checks, dockFingerprint };
  } finally {
    if (existsSync(tmp)) await rm(tmp, { recursive: true, force: true });
  }
}

function canonicalOrNothing(v: unknown): string | undefined {
  try {
    return canonicalJson(v);
  } catch {
    return undefined;
  }
}

/** cp that survives a power cut: a copy is fsynced before it is in the bundle (its directory is fsynced before the rename). */
async function copyDurable(src: string, dst: string): Promise<void> {
  try {
    await copyFile(src, dst, fsConstants.COPYFILE_EXCL);
  } catch (err) {
    throw new DockError('CUSTODY_NOT_FOUND', `cannot copy the clip ${src} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { path: src });
  }
  const fh = await open(dst, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

interface ReadmeContext {
  serial: string;
  clipId: string;
  clipName: string;
  sidecarName: string;
  status: ExportResult['status'];
  location: string;
  receipt: string;
  reason: string;
  rangeFrom: number;
  rangeTo: number;
  firstPrev: string;
  rangeLastHash: string;
  clipSeqs: number[];
  headSeq: number;
  headHash: string;
  dockFingerprint: string;
  deviceFingerprint: string;
  sha256: string;
  sidecarLines: number;
  exportedAtMs: number;
}

const FENCE = '```';

/** README.md: the checks as shell commands (```sh blocks) for exactly these files, with what each prints. */
function readme(c: ReadmeContext, files: BundleFile[]): string {
  const q = c.status === 'quarantined';
  const sh = (...cmds: string[]): string => `${FENCE}sh\n${cmds.join('\n')}\n${FENCE}\n`;
  const fileRows = [...files, { name: 'README.md', what: 'this file' }, { name: 'SHA256SUMS', what: 'SHA-256 of every other file' }].map((f) => `| \`${f.name}\` | ${f.what} |`).join('\n');
  const out: string[] = [];
  out.push(`# Evidence bundle: ${c.serial} / ${c.clipId}${q ? ' (QUARANTINED, NOT STORED)' : ''}\n`);
  if (q) {
    out.push(
      `**NOT STORED.** The dock quarantined this clip: a check failed when it was ingested (\`${c.reason}\`). It was never put in the evidence store and never released, so the camera keeps its own copy. The file here is the one the dock kept in \`quarantine/\` (\`${c.location}\`), exported so that it can be examined; it is not evidence that passed the dock's checks.\n`,
      "The camera's manifest and signature for a quarantined clip are kept in the dock's state store only, not in this bundle: ask the custodian for them, or read them from the camera, which still holds the clip.\n",
    );
  } else {
    out.push(`Status: **${c.status.toUpperCase()}**. The evidence store holds it at \`${c.location}\` (receipt \`${c.receipt}\`)${c.status === 'released' ? ', and the camera was then told to free its copy' : ''}.\n`);
  }
  out.push(
    `Exported ${new Date(c.exportedAtMs).toISOString()}. The dock's key: ed25519 sha256:${c.dockFingerprint}. The format is specified in dockside's \`docs/custody.md\` (§2 the manifest, §3 the ledger, §5 the sidecar, §12 this bundle).\n`,
    '## Files\n',
    '| file | what |\n|---|---|',
    `${fileRows}\n`,
    '## Checking it\n',
    'With `sha256sum`, `openssl` (3.0 or later), `jq`, `xxd`, `base64` and `bash`. Work in a copy of this directory (`cp -r` it): the commands write a few scratch files. Each `sh` block below is a check; each command prints what it found (`OK`, `true`, `Signature Verified Successfully`; `cmp` prints nothing when the bytes are the same) and fails (non-zero exit) when the check fails. To run them all at once, stopping at the first failure:\n',
    `${FENCE}\nsed -n '/^${FENCE}sh$/,/^${FENCE}$/{/^${FENCE}/d;p}' README.md > checks.sh\nbash -e -o pipefail checks.sh\n${FENCE}\n`,
    '### 1 The files are the ones exported\n',
    sh('sha256sum -c SHA256SUMS'),
    'Every line ends in `OK`. `SHA256SUMS` is not signed: it shows that nothing was damaged since the export; what shows who made the files are the signatures below.\n',
  );
  if (q) {
    out.push(
      "### 2 The file is the one the dock quarantined\n",
      `The dock's signed \`quarantined\` line records the hash it read from the file when it quarantined it (\`diskSha256\`):\n`,
      sh(`echo "$(jq -r 'select(.event == "quarantined") | .details.diskSha256' custody.jsonl | tail -n 1)  ${c.clipName}" | sha256sum -c`, `jq -e --slurpfile r ${c.sidecarName} 'select(.event == "quarantined") | .details.check == $r[0].check and .details.reason == $r[0].reason' custody.jsonl`),
      `The first prints \`${c.clipName}: OK\`; the second \`true\` (the unsigned \`${c.sidecarName}\` says what the signed line says: \`${c.reason}\`).\n`,
    );
  } else {
    out.push(
      "### 2 The clip is what the camera signed\n",
      `\`signed.bin\` is the exact bytes the camera signed (its manifest, canonical JSON, docs/custody.md §2), \`sig.bin\` its Ed25519 signature:\n`,
      sh(
        `jq -j .manifestCanonical ${c.sidecarName} > signed.bin`,
        `jq -r .signature ${c.sidecarName} | base64 -d > sig.bin`,
        `jq -j -c -S . signed.bin | cmp - signed.bin`,
        `jq -e '.serial == "${c.serial}" and .clipId == "${c.clipId}"' signed.bin`,
        `echo "$(jq -r .sha256 signed.bin)  ${c.clipName}" | sha256sum -c`,
        `jq -e --argjson bytes "$(wc -c < ${c.clipName})" '.size == $bytes' signed.bin`,
        `jq -j .devicePublicKeyPem ${c.sidecarName} | cmp - device.pem`,
        'openssl pkeyutl -verify -pubin -inkey device.pem -rawin -in signed.bin -sigfile sig.bin',
      ),
      `In order: the manifest bytes are canonical (\`cmp\` prints nothing); they name this camera and clip (\`true\`); the clip hashes to the signed \`sha256\` (\`${c.clipName}: OK\`; it is ${c.sha256}); its length is the signed \`size\` (\`true\`); \`device.pem\` is the sidecar's key; and the camera's signature verifies (\`Signature Verified Successfully\`). One changed byte in the clip, or in \`signed.bin\`, and these fail.\n`,
      "The manifest's `chain` value (§2.2) binds it to the camera's previous clip: SHA-256 of `prevChain` and `sha256` as raw bytes, then the manifest without its `chain` member (`{` and `signed.bin` from byte 77):\n",
      sh(
        `{ printf '%s%s' "$(jq -r .prevChain signed.bin)" "$(jq -r .sha256 signed.bin)" | xxd -r -p; printf '{'; tail -c +77 signed.bin; } > chain-input.bin`,
        `echo "$(jq -r .chain signed.bin)  chain-input.bin" | sha256sum -c`,
      ),
      'It prints `chain-input.bin: OK`. (Without `xxd`: `tr a-f A-F | basenc --base16 -d` in its place.)\n',
    );
  }
  out.push(
    '### 3 The keys\n',
    sh(...(q ? [] : ['openssl pkey -pubin -in device.pem -outform DER | tail -c 32 | sha256sum']), 'openssl pkey -pubin -in dock.pem -outform DER | tail -c 32 | sha256sum', ...(q ? [] : [`jq -j .dock.publicKeyPem ${c.sidecarName} | cmp - dock.pem`])),
    `${q ? '' : `The device key's fingerprint is ${c.deviceFingerprint}; the `}dock key's is ${c.dockFingerprint}. **Compare the dock key's fingerprint with a record of the dock kept apart from it** (the agency's records, a printout made at installation): every signature below is the dock's, and only that comparison shows whose key it is.${q ? '' : ' `cmp` shows the sidecar carries the same dock key.'}\n`,
  );
  if (!q) {
    out.push(
      `The camera's key was enrolled on the dock: \`enrollment.jsonl\` holds the ledger's \`enrolled\` (and any \`revoked\`) lines for ${c.serial}, signed by the dock (their signatures are checked in §4):\n`,
      sh(`jq -s -e --arg fp "$(openssl pkey -pubin -in device.pem -outform DER | tail -c 32 | sha256sum | cut -d ' ' -f 1)" 'map(select(.event == "enrolled" and .details.fingerprint == $fp)) | length > 0' enrollment.jsonl`),
      'It prints `true`.\n',
    );
  }
  out.push(
    `### 4 The dock's custody lines for this clip\n`,
    `\`custody.jsonl\` is the dock's ledger lines about this clip (seq ${c.clipSeqs.join(', ')}), byte for byte. Each is signed by the dock key over the line without its \`sig\` member (§3.1):\n`,
    sh(
      'for f in custody.jsonl enrollment.jsonl; do',
      '  while IFS= read -r line; do',
      `    printf '%s' "$line" | jq -j -c -S 'del(.sig)' > body.bin`,
      `    printf '%s' "$line" | jq -r .sig | base64 -d > body.sig`,
      `    printf '%s seq %s %s: ' "$f" "$(printf '%s' "$line" | jq .seq)" "$(printf '%s' "$line" | jq -r .event)"`,
      '    openssl pkeyutl -verify -pubin -inkey dock.pem -rawin -in body.bin -sigfile body.sig',
      '  done < "$f"',
      'done',
      `jq -c -S 'select(.serial == "${c.serial}" and .clipId == "${c.clipId}")' ledger-range.jsonl | cmp - custody.jsonl`,
      `jq -r '"\\(.seq) \\(.event)"' custody.jsonl`,
    ),
    `Every line prints \`Signature Verified Successfully\`; \`cmp\` shows they are exactly this clip's lines in the ledger range (§5), none left out; the last command lists the steps.\n`,
  );
  if (q) {
    out.push(
      'The steps are `listed`, `pulled`, then `quarantined` with the check that failed; a quarantined clip has no `stored` or `released` line:\n',
      sh(`jq -s -e 'map(.event) | index("quarantined") != null and index("stored") == null and index("released") == null' custody.jsonl`),
      'It prints `true`.\n',
    );
  } else {
    out.push(
      "What the dock said it checked and stored is this manifest's: its `verified` line names the manifest's `sha256` and `chain` (and so, through `chain`, every field of the manifest) and the device key it checked; its `stored` line names the `sha256` the store returned; a `released` line (the camera was told to free its copy) comes only after that:\n",
      sh(
        `jq -s -e --slurpfile m signed.bin 'map(select(.event == "verified")) | length > 0 and all(.details.sha256 == $m[0].sha256 and .details.chain == $m[0].chain)' custody.jsonl`,
        `jq -s -e --arg fp "$(openssl pkey -pubin -in device.pem -outform DER | tail -c 32 | sha256sum | cut -d ' ' -f 1)" 'map(select(.event == "verified")) | all(.details.deviceKey == $fp)' custody.jsonl`,
        `jq -s -e --slurpfile m signed.bin '(map(select(.event == "stored" and .details.sha256 == $m[0].sha256)) | first | .seq) as $s | $s != null and all(.[]; .event != "released" or (.seq > $s and .details.sha256 == $m[0].sha256))' custody.jsonl`,
        `jq -c -S '.custody[]' ${c.sidecarName} | cmp - <(head -n ${c.sidecarLines} custody.jsonl)`,
      ),
      `Each \`jq\` prints \`true\`; \`cmp\` shows the sidecar's ${c.sidecarLines} custody line(s) are the ledger's.\n`,
    );
  }
  out.push(
    '### 5 No line is missing: the ledger range\n',
    `Ledger lines are hash-chained over all the dock's clips: each line's \`prev\` is the SHA-256 of the line before it (§3.2), which is usually about another clip. \`ledger-range.jsonl\` is the ${c.rangeTo - c.rangeFrom + 1} consecutive lines seq ${c.rangeFrom} to ${c.rangeTo}: ${c.rangeFrom < c.clipSeqs[0]! ? `the line before this clip's first (seq ${c.clipSeqs[0]!}), then ` : ''}every line up to its last (seq ${c.clipSeqs.at(-1)!}). Checking that each links to the one before shows that nothing was taken out of, put into or reordered in the clip's record between those lines:\n`,
    sh(
      'prev=$(head -n 1 ledger-range.jsonl | jq -r .prev)',
      'seq=$(head -n 1 ledger-range.jsonl | jq .seq)',
      'bad=0',
      'while IFS= read -r line; do',
      `  printf '%s' "$line" | jq -j -c -S . | cmp -s - <(printf '%s' "$line") || { echo "seq $seq: not canonical JSON"; bad=$((bad + 1)); }`,
      `  [ "$(printf '%s' "$line" | jq .seq)" = "$seq" ] || { echo "line for seq $seq: its seq is $(printf '%s' "$line" | jq .seq)"; bad=$((bad + 1)); }`,
      `  [ "$(printf '%s' "$line" | jq -r .prev)" = "$prev" ] || { echo "seq $seq: prev is not the hash of the line before"; bad=$((bad + 1)); }`,
      `  printf '%s' "$line" | jq -j -c -S 'del(.sig)' > body.bin`,
      `  printf '%s' "$line" | jq -r .sig | base64 -d > body.sig`,
      '  openssl pkeyutl -verify -pubin -inkey dock.pem -rawin -in body.bin -sigfile body.sig > /dev/null || { echo "seq $seq: the dock signature does not verify"; bad=$((bad + 1)); }',
      `  prev=$(printf '%s' "$line" | sha256sum | cut -d ' ' -f 1)`,
      '  seq=$((seq + 1))',
      'done < ledger-range.jsonl',
      'echo "seq $(head -n 1 ledger-range.jsonl | jq .seq) to $((seq - 1)): $bad problem(s); hash of the last line $prev"',
      '[ "$bad" -eq 0 ]',
    ),
    `It prints \`seq ${c.rangeFrom} to ${c.rangeTo}: 0 problem(s); hash of the last line ${c.rangeLastHash}\`.\n`,
    `What the range cannot show by itself: its first line's \`prev\` (${c.firstPrev}) links to the ledger before it, and lines after seq ${c.rangeTo} are not here. At the export the whole ledger had ${c.headSeq} lines, and the hash of its last line (the ledger's head) was ${c.headHash}. Whoever holds the dock's \`ledger.jsonl\` (or a later copy of it) can show that this range is part of it, unchanged, and check the whole ledger (§9.4 of docs/custody.md):\n`,
    `${FENCE}\nsed -n '${c.rangeFrom},${c.rangeTo}p' ledger.jsonl | cmp - ledger-range.jsonl\nsed -n '${c.headSeq}p' ledger.jsonl | tr -d '\\n' | sha256sum      # ${c.headHash}\n${FENCE}\n`,
    `With dockside installed, ${q ? '' : `\`dockside verify ${c.clipName}\` runs most of §2–4 on the clip and its sidecar, and `}\`dockside custody verify --data-dir DIR\` checks the whole ledger and vault.\n`,
  );
  return `${out.join('\n')}`;
}
