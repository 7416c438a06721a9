// Drop-folder import end to end, as an operator would use it: a camera's flash
// (mounted as mass storage, here a copy of a simulated camera's flash directory)
// sits in the drop folder; `dockside run --drop-dir DIR --until-idle` imports,
// verifies, stores it and files the dropped files under imported/; a tampered clip
// is quarantined and its files go to rejected/ with the reason.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliChildren, onlyJson, type CliResult } from './helpers/cliProcess.js';

const kids = new CliChildren();
let root = '';

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'dockside-drop-')));
});
afterAll(async () => {
  await kids.killAll();
  if (root) rmSync(root, { recursive: true, force: true });
});

function said(r: CliResult): string {
  return `exit ${String(r.code ?? r.signal)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

describe('dockside run --drop-dir', () => {
  it('imports a mounted camera: every clip verified and stored, a tampered one quarantined, nothing deleted', async () => {
    const simDir = join(root, 'sim');
    const ports = join(root, 'ports');
    const dataDir = join(root, 'dock');
    const sim = await kids.startSim(['--cameras', '1', '--clips', '3', '--dir', simDir, '--ports-dir', ports, '--mode', 'synthetic', '--clip-bytes', '200000'], 1);
    const serial = sim.cameras[0]!.serial;
    const enroll = await kids.run(['enroll', serial, '--yes', '--ports-dir', ports, '--data-dir', dataDir]);
    expect(enroll.code, said(enroll)).toBe(0);
    await sim.stop();

    // The camera's storage, as a mass-storage mount inside the drop folder.
    const drop = join(root, 'drop');
    const mount = join(drop, 'camera-1');
    cpSync(join(simDir, serial), mount, { recursive: true });
    const clips = readdirSync(join(mount, 'clips')).sort();
    expect(clips).toHaveLength(3);
    const tampered = clips[1]!;
    const bytes = readFileSync(join(mount, 'clips', tampered));
    bytes[1000] = bytes[1000]! ^ 0xff;
    writeFileSync(join(mount, 'clips', tampered), bytes);

    const r = await kids.run(['run', '--drop-dir', drop, '--data-dir', dataDir, '--ports-dir', join(root, 'no-ports'), '--until-idle', '--json'], { limitMs: 60_000 });
    expect(r.code, said(r)).toBe(0);
    const summary = JSON.parse(r.lines.at(-1)!) as { clips: number; stored: number; quarantined: number; released: number };
    expect(summary).toMatchObject({ clips: 3, stored: 2, quarantined: 1, released: 0 }); // released only when the camera docks

    const id = (f: string): string => f.replace(/\.[a-z0-9]+$/, '');
    const imported = readdirSync(join(drop, 'imported', serial));
    for (const f of clips.filter((c) => c !== tampered)) {
      expect(existsSync(join(dataDir, 'vault', serial, f))).toBe(true);
      expect(imported.some((n) => n.startsWith(id(f)))).toBe(true);
    }
    expect(existsSync(join(dataDir, 'vault', serial, tampered))).toBe(false);
    const rejected = readdirSync(join(drop, 'rejected'), { recursive: true }).map(String);
    expect(rejected.some((n) => n.endsWith(tampered))).toBe(true);
    const reason = rejected.find((n) => n.endsWith('.reason.txt'))!;
    expect(readFileSync(join(drop, 'rejected', reason), 'utf8')).toMatch(/hash/);

    // The ledger records the drop as the source, and custody verifies.
    const ledger = readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8');
    expect(ledger).toContain('drop-folder');
    const custody = await kids.run(['custody', 'verify', '--data-dir', dataDir, '--json']);
    expect(custody.code, said(custody)).toBe(0);
    expect(onlyJson(custody)).toMatchObject({ ok: true });

    // Importing again duplicates nothing.
    cpSync(join(simDir, serial), join(drop, 'camera-1-again'), { recursive: true });
    const again = await kids.run(['run', '--drop-dir', drop, '--data-dir', dataDir, '--ports-dir', join(root, 'no-ports'), '--until-idle', '--json'], { limitMs: 60_000 });
    expect(again.code, said(again)).toBe(0);
    expect(JSON.parse(again.lines.at(-1)!)).toMatchObject({ clips: 3, stored: 2, quarantined: 1 });
  }, 120_000);
});
