// Smoke: a real Session against a real simulated camera over loopback.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Session } from '../src/protocol/Session.js';
import { SimFleet } from '../src/sim/SimFleet.js';

const dir = mkdtempSync(join(tmpdir(), 'dockside-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('simulated camera over loopback', () => {
  it('answers HELLO, AUTH, STATUS, LIST_CLIPS and READ', async () => {
    const fleet = await SimFleet.open({ dir, cameras: 1, clips: 2, seed: 3 });
    const [docked] = await fleet.dockAll();
    const s = await Session.connect(docked!.transport!);
    expect(s.serial).toBe(docked!.serial);
    const key = await s.authenticate(docked!.publicKeyRaw);
    expect(key.equals(docked!.publicKeyRaw)).toBe(true);
    const st = await s.status();
    expect(st.batteryPct).toBeGreaterThan(0);
    const { clips } = await s.listClips();
    expect(clips).toHaveLength(2);
    const parts: Buffer[] = [];
    await s.readRange(clips[0]!.id, 0, clips[0]!.size, (_o, d) => void parts.push(Buffer.from(d)));
    expect(Buffer.concat(parts).length).toBe(clips[0]!.size);
    await s.close();
    await fleet.close();
  });
});
