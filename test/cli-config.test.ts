// End-to-end: `dockside config check FILE` and `dockside run --config FILE`, run as a
// user runs them (the built program; `npm run build` first after editing src/).
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliChildren, onlyJson, type CliResult } from './helpers/cliProcess.js';

// The daemon test must not race other tests for the default metrics port.
const kids = new CliChildren({ DOCKSIDE_METRICS: 'off' });
let root = '';

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'dockside-cli-config-')));
});
afterAll(async () => {
  await kids.killAll();
  if (root) rmSync(root, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
}

function said(r: CliResult): string {
  return `exit ${String(r.code ?? r.signal)}${r.killed ? ' (killed at the safety limit: it hung)' : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

const check = (path: string, ...flags: string[]): Promise<CliResult> => kids.run(['config', 'check', path, ...flags]);

interface Checked {
  file: string;
  valid: boolean;
  format: string;
  config: Record<string, unknown> & { s3: Record<string, unknown>; upload: Record<string, unknown> };
  fromFile: string[];
  warnings: { key: string; message: string }[];
}

describe('dockside config check', () => {
  it('a good JSON file: valid, every key with its value and where it comes from, exit 0', async () => {
    const dataDir = join(root, 'data-json');
    const path = file('dock.json', JSON.stringify({ dataDir, bays: 4, upload: { concurrency: 2 } }));
    const r = await check(path);
    expect(r.code, said(r)).toBe(0);
    expect(r.lines[0]).toBe(`${path}: valid (JSON)`);
    expect(r.stdout).toMatch(/^bays\s+4\s+file$/m);
    expect(r.stdout).toMatch(/^usb\s+true\s+default$/m);
    expect(r.stdout).toMatch(/^metrics\s+127\.0\.0\.1:9464\s+default$/m);
    expect(r.stdout).toMatch(/^upload\.concurrency\s+2\s+file$/m);
    expect(r.stdout).toContain(`dir:${dataDir}/vault`);
    expect(r.stdout).toMatch(/^dropDir\s+\(not set: no drop-folder import\)$/m);
    expect(r.stdout).not.toContain('warning');
  });

  it('a good YAML file with --json: one document with the effective configuration', async () => {
    const dataDir = join(root, 'data-yaml');
    const drop = join(root, 'drop');
    mkdirSync(drop);
    const path = file('dock.yaml', ['# dock 7, bay wall B', `dataDir: ${dataDir}`, 'bays: 8', 'metrics: "[::1]:9464"', `dropDir: ${drop}`, 'upload:', '  bandwidth: "08:00,2M 18:00,20M 23:00,off"', ''].join('\n'));
    const r = await check(path, '--json');
    expect(r.code, said(r)).toBe(0);
    const doc = onlyJson(r) as Checked;
    expect(doc).toMatchObject({ file: path, valid: true, format: 'yaml', warnings: [] });
    expect(doc.config).toMatchObject({ dataDir, bays: 8, metrics: '[::1]:9464', dropDir: drop, sink: `dir:${dataDir}/vault`, usb: true });
    expect(doc.config.upload).toEqual({ concurrency: 3, bandwidth: '08:00,2M 18:00,20M 23:00,off', retryBaseMs: 1000, retryMaxMs: 300000, fullProbeMs: 60000 });
    expect(doc.fromFile).toEqual(['dataDir', 'bays', 'metrics', 'dropDir', 'upload.bandwidth']);
  });

  it('bad YAML syntax: exit 2, with the line and column', async () => {
    const path = file('syntax.yaml', 'bays: 4\nupload:\n  concurrency: 2\n   bandwidth: off\n');
    const r = await check(path);
    expect(r.code, said(r)).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^dockside: ${path}: line 3, column \\d+: not valid YAML: .+ \\[CONFIG_INVALID\\]\\n$`));
    const j = await check(path, '--json');
    expect(j.code).toBe(2);
    expect(onlyJson(j)).toMatchObject({ error: { code: 'CONFIG_INVALID', details: { line: 3 } } });
  });

  it('bays: eight: exit 2, naming the key, the value, what is expected and the line', async () => {
    const path = file('eight.yaml', 'usb: true\nbays: eight\n');
    const r = await check(path);
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toBe(`dockside: ${path}: line 2: bays: expected a whole number from 1 to 64, got "eight" [CONFIG_INVALID]\n`);
    const j = await check(path, '--json');
    expect(j.code).toBe(2);
    expect(onlyJson(j)).toMatchObject({ error: { code: 'CONFIG_INVALID', message: expect.stringContaining('bays: expected a whole number'), details: { key: 'bays', line: 2 } } });
  });

  it('an unknown key is refused, with the key meant', async () => {
    const path = file('typo.json', '{\n  "bais": 8\n}\n');
    const r = await check(path);
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toContain(`${path}: line 2: bais: unknown key; did you mean "bays"?`);
  });

  it('several problems: all of them, one a line', async () => {
    const path = file('many.yaml', 'bays: 0\nusb: yes\nspool:\n  minFree: 1\nupload:\n  concurrency: 2\n  concurrency: 3\n');
    // A duplicate key is found before the schema runs: alone.
    const dup = await check(path);
    expect(dup.code, said(dup)).toBe(2);
    expect(dup.stderr).toContain('line 7: upload.concurrency: given twice (first on line 6)');
    const many = file('many2.yaml', 'bays: 0\nusb: yes\nspool:\n  minFree: 1\n');
    const r = await check(many);
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toBe(
      [
        `dockside: ${many}: 3 problems [CONFIG_INVALID]`,
        '  line 1: bays: expected a whole number from 1 to 64, got 0',
        '  line 2: usb: expected true or false, got "yes"',
        '  line 4: spool.minFree: unknown key (docs/operations.md lists every key)',
        '',
      ].join('\n'),
    );
  });

  it('secrets are shown as [redacted], in text and in JSON', async () => {
    const path = file('s3.yaml', ['sink: s3://evidence/dock7', 's3:', '  endpoint: http://minio:PLANTEDPASS@127.0.0.1:9000', '  accessKeyId: AKIDEXAMPLE', '  secretAccessKey: PLANTED/SECRET+KEY', '  sessionToken: PLANTEDTOKEN', `dataDir: ${join(root, 'data-s3')}`, ''].join('\n'));
    const r = await check(path);
    const j = await check(path, '--json');
    expect(r.code, said(r)).toBe(0);
    expect(j.code, said(j)).toBe(0);
    for (const out of [r.stdout + r.stderr, j.stdout + j.stderr]) {
      expect(out).not.toContain('PLANTED');
      expect(out).toContain('[redacted]');
      expect(out).toContain('AKIDEXAMPLE');
    }
    expect(r.stdout).toMatch(/^s3\.secretAccessKey\s+\[redacted\]\s+file$/m);
    expect((onlyJson(j) as Checked).config.s3).toMatchObject({ secretAccessKey: '[redacted]', sessionToken: '[redacted]', endpoint: 'http://minio:[redacted]@127.0.0.1:9000/' });
    // A bad secret is reported without its value.
    const bad = await check(file('s3-bad.yaml', 's3:\n  accessKeyId: AKID\n  secretAccessKey: 8675309\n'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('s3.secretAccessKey: expected a non-empty string (the value is not shown: it is a secret)');
    expect(bad.stderr).not.toContain('8675309');
  });

  it('an s3:// sink is checked as the daemon checks it when it opens the store', async () => {
    const r = await check(file('bucket.yaml', 'sink: s3://Evidence_Bucket/dock7\n'), '--json');
    expect(r.code, said(r)).toBe(2);
    expect(onlyJson(r)).toMatchObject({ error: { code: 'CONFIG_INVALID', message: expect.stringMatching(/bucket\.yaml: sink: .*bucket name of 3 to 63 lower-case letters/) } });
  });

  it('paths that will not work here are warnings, not errors', async () => {
    const path = file('paths.yaml', ['dataDir: ./var', `sink: dir:${join(root, 'no', 'such', 'vault')}`, `portsDir: ${join(root, 'no-ports')}`, `dropDir: ${join(root, 'no-drop')}`, 'metrics: 0.0.0.0:9464', ''].join('\n'));
    const r = await check(path, '--json');
    expect(r.code, said(r)).toBe(0);
    const keys = (onlyJson(r) as Checked).warnings.map((w) => w.key);
    expect(keys).toEqual(['dataDir', 'sink', 'portsDir', 'dropDir', 'metrics']);
    const text = await check(path);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('warning: dataDir: ./var is relative');
    expect(text.stdout).toContain(`warning: sink: ${join(root, 'no', 'such', 'vault')} does not exist, nor does its parent`);
    expect(text.stdout).toContain(`warning: dropDir: ${join(root, 'no-drop')} does not exist`);
    expect(text.stdout).toContain('warning: metrics: 0.0.0.0:9464 is beyond loopback');
  });

  it('a file that cannot be read, or is empty: exit 2', async () => {
    const missing = await check(join(root, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the config file .*nope\.yaml/);
    const empty = await check(file('empty.yaml', ''));
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the file is empty');
  });
});

describe('dockside run --config', () => {
  it('a YAML file with a bad value: exit 2 naming the key, before anything starts', async () => {
    const d = join(root, 'run-bad');
    const path = file('run-bad.yaml', `dataDir: ${d}\nupload:\n  concurrency: many\n`);
    const r = await kids.run(['run', '--config', path, '--sim', '1', '--until-idle', '--json']);
    expect(r.code, said(r)).toBe(2);
    expect(JSON.parse(r.lines.at(-1)!)).toMatchObject({ error: { code: 'CONFIG_INVALID', message: `${path}: line 3: upload.concurrency: expected a whole number from 1 to 64, got "many"` } });
  });

  it('a YAML file is what the daemon runs with', async () => {
    const d = join(root, 'run-good');
    const path = file('run-good.yaml', [`dataDir: ${d}`, 'metrics: "off"', 'bays: 2', 'upload:', '  concurrency: 1', ''].join('\n'));
    const r = await kids.run(['run', '--config', path, '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--until-idle', '--json'], { limitMs: 60_000 });
    expect(r.code, said(r)).toBe(0);
    expect(JSON.parse(r.lines.at(-1)!)).toMatchObject({ cameras: 1, clips: 1, stored: 1, released: 1 });
    // dataDir came from the file: the vault is there.
    const again = await kids.run(['custody', 'verify', '--data-dir', d, '--json']);
    expect(again.code, said(again)).toBe(0);
  });
});
