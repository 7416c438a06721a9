// `dockside custody export`: one clip's bundle for a prosecutor or a defence expert
// (docs/custody.md §12). The bundle's README commands are taken out of the generated
// README.md and run with the system's bash, sha256sum, openssl and jq, as the expert
// would; then the bundle is tampered with and they must fail. Runs the built binary.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Each README run spawns openssl and jq for every ledger line in the range: seconds on an
// idle machine, more on a loaded one. A safety limit, not a timing assertion.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });
import { loadOrCreateDockKey } from '../src/custody/dockKey.js';
import { Ledger } from '../src/custody/Ledger.js';
import { CliChildren, onlyJson, type CliResult } from './helpers/cliProcess.js';

const kids = new CliChildren();
let root = '';
let dataDir = '';
let stored: { serial: string; clipId: string };
let quarantined: { serial: string; clipId: string };

const said = (r: CliResult): string => `exit ${String(r.code ?? r.signal)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
const exportClip = (...args: string[]): Promise<CliResult> => kids.run(['custody', 'export', ...args]);
let n = 0;
const fresh = (name: string): string => join(root, `${name}-${++n}`);

/** The ```sh blocks of a README, in order: the commands an expert is told to run. */
function shellBlocks(readme: string): string {
  const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  expect(blocks.length).toBeGreaterThan(3);
  return blocks.join('\n');
}

/** A writable scratch copy of a bundle (its files are read-only), changed by `tamper`, with the README's commands run in it. */
async function runReadme(bundle: string, tamper: (dir: string) => void = () => undefined): Promise<{ code: number | null; out: string }> {
  const dir = fresh('check');
  cpSync(bundle, dir, { recursive: true });
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  tamper(dir);
  const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', shellBlocks(readFileSync(join(dir, 'README.md'), 'utf8'))], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`bash cannot run (bash, sha256sum, openssl, jq and xxd must be installed for this test): ${err.message}`)));
    child.once('close', (code) => resolve({ code, out }));
  });
}

/** What someone changing the bundle would also do: make SHA256SUMS match again. */
function resum(dir: string): void {
  const lines = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').trim().split('\n');
  writeFileSync(join(dir, 'SHA256SUMS'), lines.map((l) => l.slice(66)).map((name) => `${createHash('sha256').update(readFileSync(join(dir, name))).digest('hex')}  ${name}\n`).join(''));
}

function flipByte(path: string, at: number): void {
  const b = readFileSync(path);
  b[at] = b[at]! ^ 0x01;
  writeFileSync(path, b);
}

let storedBundle = '';

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dockside-cli-export-'));
  dataDir = join(root, 'var');
  const r = await kids.run(['run', '--sim', '2', '--sim-clips', '2', '--sim-mode', 'synthetic', '--sim-clip-bytes', '60000', '--sim-faults', 'corrupt=1', '--data-dir', dataDir, '--until-idle', '--json'], { limitMs: 30_000 });
  expect(r.code, said(r)).toBe(0);
  const first = (dir: string, keep: (f: string) => boolean): { serial: string; clipId: string } => {
    for (const serial of readdirSync(dir).sort()) {
      const f = readdirSync(join(dir, serial)).sort().find(keep);
      if (f) return { serial, clipId: f.slice(0, f.indexOf('.')) };
    }
    throw new Error(`no clip in ${dir}`);
  };
  stored = first(join(dataDir, 'vault'), (f) => f.endsWith('.bin'));
  quarantined = first(join(dataDir, 'quarantine'), (f) => f.endsWith('.bin'));
  storedBundle = fresh('bundle');
  const e = await exportClip(stored.clipId, '--data-dir', dataDir, '--out', storedBundle);
  expect(e.code, said(e)).toBe(0);
}, 40_000);

afterAll(async () => {
  await kids.killAll();
  if (root && !process.env["KEEP"]) rmSync(root, { recursive: true, force: true });
});

describe.concurrent('custody export: a stored clip', () => {
  it('writes the clip, sidecar, keys, custody lines, the ledger range, SHA256SUMS and README, all read-only', () => {
    const files = readdirSync(storedBundle).sort();
    expect(files).toEqual([`${stored.clipId}.bin`, `${stored.clipId}.json`, 'README.md', 'SHA256SUMS', 'bundle.json', 'custody.jsonl', 'device.pem', 'dock.pem', 'enrollment.jsonl', 'ledger-range.jsonl'].sort());
    expect(readFileSync(join(storedBundle, `${stored.clipId}.bin`)).equals(readFileSync(join(dataDir, 'vault', stored.serial, `${stored.clipId}.bin`)))).toBe(true);
    expect(readFileSync(join(storedBundle, 'dock.pem')).equals(readFileSync(join(dataDir, 'dock.pub.pem')))).toBe(true);
    const range = readFileSync(join(storedBundle, 'ledger-range.jsonl'), 'utf8').trim().split('\n');
    const ledger = readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8').trim().split('\n');
    const seqs = range.map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(range).toEqual(ledger.slice(seqs[0]! - 1, seqs.at(-1)!)); // consecutive, byte for byte
    const mine = ledger.filter((l) => l.includes(`"clipId":"${stored.clipId}"`) && l.includes(`"serial":"${stored.serial}"`));
    expect(readFileSync(join(storedBundle, 'custody.jsonl'), 'utf8')).toBe(mine.map((l) => `${l}\n`).join(''));
    expect(seqs[0]).toBe((JSON.parse(mine[0]!) as { seq: number }).seq - 1); // the line before the clip's first, so its link is checked
    expect(seqs.at(-1)).toBe((JSON.parse(mine.at(-1)!) as { seq: number }).seq);
    expect(readFileSync(join(storedBundle, 'SHA256SUMS'), 'utf8').trim().split('\n')).toHaveLength(files.length - 1);
    for (const f of files) expect(statSync(join(storedBundle, f)).mode & 0o777, f).toBe(0o444); // (root may write it all the same: the mode is a guard against accidents)
  });

  it("the README's commands, run with bash, sha256sum, openssl and jq, all pass", async () => {
    const r = await runReadme(storedBundle);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`${stored.clipId}.bin: OK`);
    expect(r.out).toContain('chain-input.bin: OK');
    expect(r.out).toMatch(/custody\.jsonl seq \d+ stored: Signature Verified Successfully/);
    expect(r.out).toMatch(/: 0 problem\(s\); hash of the last line [0-9a-f]{64}/);
    expect(r.out).not.toMatch(/FAILED|Failure|false/);
  });

  it('one byte of the clip changed: the README commands fail (SHA256SUMS)', async () => {
    const r = await runReadme(storedBundle, (d) => flipByte(join(d, `${stored.clipId}.bin`), 1000));
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toContain(`${stored.clipId}.bin: FAILED`);
  });

  it('one byte of the clip changed and SHA256SUMS rewritten to match: they still fail, at the signed sha256', async () => {
    const r = await runReadme(storedBundle, (d) => {
      flipByte(join(d, `${stored.clipId}.bin`), 1000);
      resum(d);
    });
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(new RegExp(`README.md: OK[\\s\\S]*${stored.clipId}\\.bin: FAILED`));
    expect(r.out).not.toContain('Signature Verified Successfully'); // it stopped at the hash
  });

  it("another clip's ledger line in the range altered (SHA256SUMS rewritten): the dock signature fails", async () => {
    const r = await runReadme(storedBundle, (d) => {
      const path = join(d, 'ledger-range.jsonl');
      const lines = readFileSync(path, 'utf8').split('\n');
      const i = lines.findIndex((l) => l !== '' && !l.includes(`"clipId":"${stored.clipId}"`));
      lines[i] = lines[i]!.replace(/"timeMs":(\d)/, (_m, d1: string) => `"timeMs":${(Number(d1) + 1) % 10}`);
      writeFileSync(path, lines.join('\n'));
      resum(d);
    });
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/seq \d+: the dock signature does not verify/);
  });

  it("one of the clip's lines removed from custody.jsonl, the range and the sidecar (SHA256SUMS rewritten): the links fail", async () => {
    const r = await runReadme(storedBundle, (d) => {
      const drop = (f: string): void => {
        const lines = readFileSync(join(d, f), 'utf8').split('\n');
        writeFileSync(join(d, f), lines.filter((l) => !(l.includes(`"clipId":"${stored.clipId}"`) && l.includes('"event":"pulled"'))).join('\n'));
      };
      drop('custody.jsonl');
      drop('ledger-range.jsonl');
      const sidecar = join(d, `${stored.clipId}.json`);
      const sc = JSON.parse(readFileSync(sidecar, 'utf8')) as { custody: { event: string }[] };
      sc.custody = sc.custody.filter((e) => e.event !== 'pulled');
      writeFileSync(sidecar, `${JSON.stringify(sc, null, 2)}\n`);
      resum(d);
    });
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/prev is not the hash of the line before/);
  });

  it("one of the clip's lines removed from custody.jsonl and the range but left in the sidecar: the sidecar comparison fails", async () => {
    const r = await runReadme(storedBundle, (d) => {
      for (const f of ['custody.jsonl', 'ledger-range.jsonl']) {
        const lines = readFileSync(join(d, f), 'utf8').split('\n');
        writeFileSync(join(d, f), lines.filter((l) => !(l.includes(`"clipId":"${stored.clipId}"`) && l.includes('"event":"pulled"'))).join('\n'));
      }
      resum(d);
    });
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/^- \/dev\/fd\/\d+ differ|EOF on/m);
  });

  it('dockside verify passes on the bundle\'s clip (its sidecar is beside it)', async () => {
    const r = await kids.run(['verify', join(storedBundle, `${stored.clipId}.bin`), '--json']);
    expect(r.code, said(r)).toBe(0);
  });

  it('--json: one document with the files, the range and every check passing', async () => {
    const out = fresh('bundle-json');
    const r = await exportClip(stored.clipId, '--serial', stored.serial, '--data-dir', dataDir, '--out', out, '--json');
    expect(r.code, said(r)).toBe(0);
    const doc = onlyJson(r) as { ok: boolean; status: string; files: { name: string }[]; checks: { ok: boolean }[]; ledger: { rangeFromSeq: number; rangeToSeq: number } };
    expect(doc).toMatchObject({ ok: true, serial: stored.serial, clipId: stored.clipId, status: 'released' });
    expect(doc.files.map((f) => f.name)).toContain('ledger-range.jsonl');
    expect(doc.checks.every((c) => c.ok)).toBe(true);
    expect(doc.ledger.rangeToSeq).toBeGreaterThan(doc.ledger.rangeFromSeq);
  });

  it('--vault COPY: the clip and sidecar are taken from the copy', async () => {
    const copy = fresh('vault-copy');
    cpSync(join(dataDir, 'vault'), copy, { recursive: true });
    const r = await exportClip(stored.clipId, '--data-dir', dataDir, '--vault', copy, '--out', fresh('bundle-vault'), '--json');
    expect(r.code, said(r)).toBe(0);
    expect(onlyJson(r)).toMatchObject({ ok: true, source: join(copy, stored.serial, `${stored.clipId}.bin`) });
  });

  it('--out that already holds a file: refused (exit 2), and the file is left alone', async () => {
    const out = fresh('occupied');
    mkdirSync(out);
    writeFileSync(join(out, 'exhibit.txt'), 'keep me');
    const r = await exportClip(stored.clipId, '--data-dir', dataDir, '--out', out);
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toMatch(/already holds 1 file.*never overwrites/);
    expect(readdirSync(out)).toEqual(['exhibit.txt']);
    expect(readFileSync(join(out, 'exhibit.txt'), 'utf8')).toBe('keep me');
  });
});

describe.concurrent('custody export: a quarantined clip', () => {
  it('is exported from quarantine/ with its reason, labelled NOT STORED, and its README commands pass', async () => {
    const out = fresh('bundle-q');
    const r = await exportClip(quarantined.clipId, '--serial', quarantined.serial, '--data-dir', dataDir, '--out', out);
    expect(r.code, said(r)).toBe(0);
    expect(r.stdout).toContain('QUARANTINED, NOT STORED');
    expect(r.stdout).toMatch(/Reason +hash: /);
    expect(readdirSync(out)).toContain(`${quarantined.clipId}.reason.json`);
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    expect(readme.split('\n')[0]).toContain('NOT STORED');
    expect(readme).toContain('**NOT STORED.**');
    const ok = await runReadme(out);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain(`${quarantined.clipId}.bin: OK`);
    const bad = await runReadme(out, (d) => {
      flipByte(join(d, `${quarantined.clipId}.bin`), 10);
      resum(d);
    });
    expect(bad.code, bad.out).not.toBe(0);
    expect(bad.out).toContain(`${quarantined.clipId}.bin: FAILED`);
  });
});

describe.concurrent('custody export: which clip, and from where', () => {
  /** A data dir whose ledger alone says: clip X from two cameras, clip Y stored in S3, clip Z only listed. */
  let crafted = '';
  beforeAll(async () => {
    crafted = fresh('crafted');
    mkdirSync(crafted);
    const key = loadOrCreateDockKey(crafted);
    const ledger = Ledger.open(join(crafted, 'ledger.jsonl'), key.privateKey);
    ledger.append('ledger_opened', { details: { dock: key.fingerprint, sink: 's3://evidence/dock1' } });
    for (const serial of ['BC4-AAAA0001', 'BC4-BBBB0002']) ledger.append('listed', { serial, clipId: 'CLIP-X', details: { seq: 1, size: 10 } });
    ledger.append('listed', { serial: 'BC4-AAAA0001', clipId: 'CLIP-Y', details: { seq: 2, size: 10 } });
    ledger.append('stored', { serial: 'BC4-AAAA0001', clipId: 'CLIP-Y', details: { sink: 's3://evidence/dock1', location: 's3://evidence/dock1/BC4-AAAA0001/CLIP-Y.bin', sha256: '0'.repeat(64), bytes: 10, receipt: 's3:x', existed: false } });
    ledger.append('listed', { serial: 'BC4-AAAA0001', clipId: 'CLIP-Z', details: { seq: 3, size: 10 } });
    await ledger.close();
  });

  it('a clip id two cameras have: a usage error (exit 2) naming both serials', async () => {
    const r = await exportClip('CLIP-X', '--data-dir', crafted, '--out', fresh('o'));
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toMatch(/2 cameras have a clip CLIP-X: BC4-AAAA0001, BC4-BBBB0002; say which with --serial/);
  });

  it('a clip id the ledger does not have: exit 3, saying so', async () => {
    const r = await exportClip('NO-SUCH-CLIP', '--data-dir', dataDir, '--out', fresh('o'), '--json');
    expect(r.code, said(r)).toBe(3);
    expect(onlyJson(r)).toMatchObject({ error: { message: expect.stringMatching(/has no clip NO-SUCH-CLIP/) as unknown } });
  });

  it('--serial of a camera that does not have the clip: exit 3, naming the one that does', async () => {
    const r = await exportClip(stored.clipId, '--serial', 'BC4-00000000', '--data-dir', dataDir, '--out', fresh('o'));
    expect(r.code, said(r)).toBe(3);
    expect(r.stderr).toContain(`the ledger has it from ${stored.serial}`);
  });

  it('a clip only listed, not stored: exit 3, saying what its last step was', async () => {
    const r = await exportClip('CLIP-Z', '--data-dir', crafted, '--out', fresh('o'));
    expect(r.code, said(r)).toBe(3);
    expect(r.stderr).toMatch(/not in the evidence store yet \(its last custody step is "listed"/);
  });

  it('a clip stored in an s3:// sink, without --vault: exit 2, saying how to make a local copy', async () => {
    const out = fresh('o');
    const r = await exportClip('CLIP-Y', '--data-dir', crafted, '--out', out);
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toContain('is stored in s3://evidence/dock1/BC4-AAAA0001/CLIP-Y.bin, not on this machine');
    expect(r.stderr).toContain('aws s3 sync s3://evidence/dock1 DIR');
    expect(existsSync(out)).toBe(false);
  });
});

describe('custody export beside a running daemon', () => {
  it('exports a released clip while `dockside run` holds the data directory, and the daemon runs on', async () => {
    const d = fresh('live');
    const daemon = kids.spawn(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '20000', '--data-dir', d]);
    const ledger = join(d, 'ledger.jsonl');
    const deadline = Date.now() + 20_000;
    while (!(existsSync(ledger) && readFileSync(ledger, 'utf8').includes('"event":"released"'))) {
      if (Date.now() > deadline || daemon.exitCode !== null) throw new Error('the daemon released no clip in 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const released = readFileSync(ledger, 'utf8').split('\n').find((l) => l.includes('"event":"released"'))!;
    const clipId = (JSON.parse(released) as { clipId: string }).clipId;
    expect(existsSync(join(d, 'dockside.lock'))).toBe(true);
    const r = await exportClip(clipId, '--data-dir', d, '--out', fresh('bundle-live'), '--json');
    expect(r.code, said(r)).toBe(0);
    expect(onlyJson(r)).toMatchObject({ ok: true, status: 'released' });
    expect(daemon.exitCode).toBeNull();
    await kids.killTransient();
  });
});
