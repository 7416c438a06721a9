import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDockError } from './errors.js';
import { probe, recordTestClip } from './media.js';
import { rejection } from '../test/helpers/rejection.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dockside-media-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('probe (ffprobe with a timeout)', () => {
  it('reads a real clip made by ffmpeg: container, codecs, size, duration', async () => {
    const path = join(dir, 'real.mp4');
    await recordTestClip(path, { serial: 'BC4-MEDIA001', startMs: Date.UTC(2026, 11, 2), durationS: 2, width: 320, height: 180 });
    const p = await probe(path);
    expect(p.container).toContain('mp4');
    expect(p.videoCodec).toBe('h264');
    expect(p.audioCodec).toBe('aac');
    expect([p.width, p.height]).toEqual([320, 180]);
    expect(p.durationS).toBeGreaterThan(1.5);
    expect(p.durationS).toBeLessThan(2.5);
  }, 60_000);

  it('a file that is no media: a typed error carrying what ffprobe said', async () => {
    const path = join(dir, 'noise.mp4');
    writeFileSync(path, Buffer.alloc(50_000, 0x5a));
    const err = await rejection(probe(path));
    expect(isDockError(err, 'SIM_FFMPEG')).toBe(true);
    expect((err as Error).message).toMatch(/ffprobe could not read .*noise\.mp4: .*(Invalid data|could not find|moov)/i);
  });

  it('a clip ffprobe never finishes reading (a FIFO nobody writes) is stopped after the timeout, not waited for', async () => {
    const path = join(dir, 'stuck.mp4');
    execFileSync('mkfifo', [path]);
    const err = await rejection(probe(path, 400));
    expect(isDockError(err, 'SIM_FFMPEG')).toBe(true);
    expect((err as Error).message).toContain('did not finish within 400 ms and was stopped');
  });
});
