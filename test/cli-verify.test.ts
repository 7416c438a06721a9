// `dockside verify FILE`: one clip against its sidecar, offline, as a defence expert
// runs it on a vault copy (docs/custody.md §11). The clips come from a real
// `dockside run --sim`; the built binary is run (`npm run build` after editing src/).
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/custody/canonicalJson.js';
import { computeChain, type Manifest } from '../src/custody/manifest.js';
import type { Sidecar } from '../src/custody/sidecar.js';
import { CliChildren, onlyJson, type CliResult } from './helpers/cliProcess.js';

const kids = new CliChildren();
let root = '';
let dataDir = '';
let clips: { serial: string; clipId: string; file: string; sidecar: string }[] = [];

interface Report {
  ok: boolean;
  serial: string;
  clipId: string;
  checks: { check: string; ok: boolean; detail: string }[];
  notChecked: string[];
}

const said = (r: CliResult): string => `exit ${String(r.code ?? r.signal)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
const failed = (r: CliResult): string[] => (onlyJson(r) as Report).checks.filter((c) => !c.ok).map((c) => c.check);

let n = 0;
/** A scratch copy of a clip and its sidecar, the sidecar passed through `edit`. */
function copy(i: number, edit: (sc: Sidecar) => void = () => undefined): { file: string; sidecar: string } {
  const c = clips[i]!;
  const dir = join(root, `copy-${++n}`);
  mkdirSync(dir);
  const file = join(dir, c.file.split('/').at(-1)!);
  copyFileSync(c.file, file);
  const sc = JSON.parse(readFileSync(c.sidecar, 'utf8')) as Sidecar;
  edit(sc);
  const sidecar = join(dir, `${c.clipId}.json`);
  writeFileSync(sidecar, `${JSON.stringify(sc, null, 2)}\n`);
  return { file, sidecar };
}

const verify = (...args: string[]): Promise<CliResult> => kids.run(['verify', ...args]);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dockside-cli-verify-'));
  dataDir = join(root, 'var');
  const r = await kids.run(['run', '--sim', '2', '--sim-clips', '2', '--sim-mode', 'synthetic', '--sim-clip-bytes', '100000', '--data-dir', dataDir, '--until-idle', '--json'], { limitMs: 30_000 });
  expect(r.code, said(r)).toBe(0);
  const vault = join(dataDir, 'vault');
  clips = readdirSync(vault)
    .sort()
    .flatMap((serial) =>
      readdirSync(join(vault, serial))
        .filter((f) => f.endsWith('.bin'))
        .sort()
        .map((f) => ({ serial, clipId: f.slice(0, -4), file: join(vault, serial, f), sidecar: join(vault, serial, `${f.slice(0, -4)}.json`) })),
    );
  expect(clips).toHaveLength(4);
}, 40_000);

afterAll(async () => {
  await kids.killAll();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe.concurrent('dockside verify: a clip as stored', () => {
  it('a stored clip from the vault verifies (exit 0), every check on its own line, and says what a sidecar cannot show', async () => {
    const r = await verify(clips[0]!.file);
    expect(r.code, said(r)).toBe(0);
    for (const check of ['sidecar', 'manifest', 'chain', 'size', 'sha256', 'device signature', 'dock key', 'custody signatures', 'custody clip', 'custody order', 'custody verified', 'custody stored']) expect(r.stdout).toMatch(new RegExp(`^ok +${check} `, 'm'));
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(r.stdout).toContain('The clip verifies against its sidecar.');
    expect(r.stdout).toMatch(/Not checked[\s\S]*enrolled[\s\S]*dock key[\s\S]*custody export/);
  });

  it('--json: one document, ok, every check ok, naming the clip', async () => {
    const r = await verify(clips[1]!.file, '--json');
    expect(r.code, said(r)).toBe(0);
    const doc = onlyJson(r) as Report;
    expect(doc).toMatchObject({ ok: true, serial: clips[1]!.serial, clipId: clips[1]!.clipId });
    expect(doc.checks.length).toBeGreaterThanOrEqual(12);
    expect(doc.checks.every((c) => c.ok)).toBe(true);
    expect(doc.notChecked).toHaveLength(3);
  });

  it('a renamed copy verifies with --sidecar', async () => {
    const { file, sidecar } = copy(2);
    const renamed = join(root, 'exhibit-7.bin');
    copyFileSync(file, renamed);
    const r = await verify(renamed, '--sidecar', sidecar, '--json');
    expect(r.code, said(r)).toBe(0);
  });
});

describe.concurrent('dockside verify: altered evidence fails (exit 4) and says which check', () => {
  it('one byte flipped in a copy of the clip: the sha256 check fails, and only it', async () => {
    const { file } = copy(0);
    const bytes = readFileSync(file);
    bytes[5000] = bytes[5000]! ^ 0x01;
    writeFileSync(file, bytes);
    const r = await verify(file);
    expect(r.code, said(r)).toBe(4);
    expect(r.stdout).toMatch(/^FAIL +sha256 +the file hashes to [0-9a-f]{64}, the signed manifest's sha256 is/m);
    expect(r.stdout).toContain('THE CLIP DOES NOT VERIFY');
    expect(failed(await verify(file, '--json'))).toEqual(['sha256']);
  });

  it('a truncated copy: size and sha256 fail', async () => {
    const { file } = copy(0);
    writeFileSync(file, readFileSync(file).subarray(0, 99_999));
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toEqual(['size', 'sha256']);
  });

  it('a field of the signed manifest changed (still canonical): the chain and the camera signature fail', async () => {
    const { file } = copy(1, (sc) => {
      sc.manifestCanonical = sc.manifestCanonical.replace(/"officerId":"[^"]*"/, '"officerId":"OFC-0000"');
      sc.manifest.officerId = 'OFC-0000';
    });
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toEqual(['chain', 'device signature']);
  });

  it('a forged manifest with its chain recomputed: the camera signature fails, and the dock\'s "verified" line names the other chain', async () => {
    const { file } = copy(1, (sc) => {
      const m = JSON.parse(sc.manifestCanonical) as Manifest;
      m.officerId = 'OFC-0000';
      m.chain = computeChain(m);
      sc.manifestCanonical = canonicalJson(m);
      sc.manifest = m;
    });
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toEqual(['device signature', 'custody verified']);
  });

  it('manifestCanonical not canonical (white space added): the manifest check fails', async () => {
    const { file } = copy(1, (sc) => {
      sc.manifestCanonical = sc.manifestCanonical.replace('{"chain":', '{ "chain":');
    });
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toContain('manifest');
  });

  it('one bit of the camera signature changed: the device signature check fails, and only it', async () => {
    const { file } = copy(2, (sc) => {
      const sig = Buffer.from(sc.signature, 'base64');
      sig[10] = sig[10]! ^ 0x01;
      sc.signature = sig.toString('base64');
    });
    const r = await verify(file);
    expect(r.code, said(r)).toBe(4);
    expect(r.stdout).toMatch(/^FAIL +device signature +the camera's signature over manifestCanonical does not verify/m);
    expect(failed(await verify(file, '--json'))).toEqual(['device signature']);
  });

  it('a custody line altered (the stored line\'s location): its dock signature fails', async () => {
    const { file } = copy(3, (sc) => {
      const stored = sc.custody.find((e) => e.event === 'stored')!;
      stored.details['location'] = '/somewhere/else.bin';
    });
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toEqual(['custody signatures']);
  });

  it("another clip's (validly signed) stored line put in place of this one's: custody clip and stored fail", async () => {
    const other = JSON.parse(readFileSync(clips[0]!.sidecar, 'utf8')) as Sidecar;
    const { file } = copy(3, (sc) => {
      const i = sc.custody.findIndex((e) => e.event === 'stored');
      sc.custody[i] = other.custody.find((e) => e.event === 'stored')!;
      sc.custody.sort((a, b) => a.seq - b.seq);
    });
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toEqual(expect.arrayContaining(['custody clip', 'custody stored']));
    expect(failed(r)).not.toContain('custody signatures');
  });

  it('a sidecar that is not one: exit 4, the sidecar check fails', async () => {
    const { file, sidecar } = copy(0);
    writeFileSync(sidecar, '{"format":"something-else"}\n');
    const r = await verify(file, '--json');
    expect(r.code, said(r)).toBe(4);
    expect(failed(r)).toEqual(['sidecar']);
  });
});

describe.concurrent('dockside verify: what it cannot run on', () => {
  it('no sidecar beside the file: exit 1, and the message says to give --sidecar', async () => {
    const lone = join(root, 'lone');
    mkdirSync(lone);
    copyFileSync(clips[0]!.file, join(lone, 'clip.bin'));
    const r = await verify(join(lone, 'clip.bin'));
    expect(r.code, said(r)).toBe(1);
    expect(r.stderr).toMatch(/cannot read the sidecar .*clip\.json: ENOENT.*--sidecar/);
  });

  it('a clip file that does not exist: exit 1, naming it', async () => {
    const r = await verify(join(root, 'missing.bin'), '--json');
    expect(r.code, said(r)).toBe(1);
    expect(onlyJson(r)).toMatchObject({ error: { code: 'CUSTODY_UNREADABLE', message: expect.stringContaining('cannot read the clip file') as unknown } });
  });

  it('no file given: a usage error (exit 2)', async () => {
    const r = await verify();
    expect(r.code, said(r)).toBe(2);
  });
});
