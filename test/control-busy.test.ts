// A camera being offloaded belongs to its offload: technician operations that would
// share its link (diag's link test, a firmware update) are refused as CAMERA_BUSY, and
// asking for a pull of it again starts nothing new. In-process daemon, a slow modelled
// link so that the offload is still running when the requests arrive; the requests go
// through the real control socket.
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callDaemon } from '../src/control/ControlClient.js';
import { Daemon } from '../src/ingest/Daemon.js';
import { parseFaults } from '../src/sim/faults.js';
import { packFirmware } from '../src/protocol/firmwarePackage.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('operations on a camera mid-offload', () => {
  it('diag and firmware are CAMERA_BUSY while it pulls; the offload finishes untouched', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dockside-busy-'));
    dirs.push(dataDir);
    const daemon = await Daemon.open({ dataDir, hashThreads: 1, spool: { minFreeBytes: 1024 * 1024 }, sim: { cameras: 1, clips: 2, seed: 4, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 600_000 }, faults: parseFaults(''), linkRateBytesPerS: 300_000 } });
    try {
      await daemon.start();
      const serial = daemon.simFleet!.cameras[0]!.serial;
      const until = Date.now() + 20_000;
      while (daemon.bays[0]?.state !== 'pulling' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(daemon.bays[0]?.state).toBe('pulling');
      await expect(callDaemon(dataDir, 'diag', { serial, linkSeconds: 1 })).rejects.toMatchObject({ code: 'CAMERA_BUSY' });
      const pkg = join(dataDir, 'fw.dsfw');
      writeFileSync(pkg, packFirmware(Buffer.alloc(5000, 7), 'Sentinel BC4', '4.9.0', createPrivateKey(readFileSync(new URL('../fixtures/keys/sim-vendor-firmware.key.pem', import.meta.url)))));
      await expect(callDaemon(dataDir, 'firmware', { serial, path: pkg })).rejects.toMatchObject({ code: 'CAMERA_BUSY' });
      const pull = await callDaemon<{ started: boolean; bays: { state: string }[] }>(dataDir, 'pull', { serial });
      expect(pull!.result.bays[0]!.state).toBe('pulling'); // the running offload, not a second one
      const summary = await daemon.whenIdle();
      expect(summary).toMatchObject({ clips: 2, stored: 2, released: 2, quarantined: 0 });
      expect(daemon.bays[0]!.activity.pulled).toBe(2);
      // Done: now the camera is free for a diagnosis.
      const d = await callDaemon<{ serial: string; selftest: { passed: boolean } }>(dataDir, 'diag', { serial, linkSeconds: 0.2, linkBytes: 100_000 }, 30_000);
      expect(d!.result).toMatchObject({ serial, selftest: { passed: true } });
      expect(daemon.simFleet!.cameras[0]!.flash.identity.firmware).toBe('4.2.1'); // the refused update never reached it
    } finally {
      await daemon.close();
    }
  }, 60_000);
});
