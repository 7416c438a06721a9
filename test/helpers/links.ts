// A simulated camera and the dock's end of its link, over loopback or over a socat
// pseudo-terminal pair with the real serialport bindings on both ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialTransport } from '../../src/hal/serial/SerialTransport.js';
import type { Transport } from '../../src/hal/Transport.js';
import { parseFaults } from '../../src/sim/faults.js';
import { SimFleet, type SimLinkKind } from '../../src/sim/SimFleet.js';
import type { SimCamera } from '../../src/sim/SimCamera.js';
import type { RecordOptions } from '../../src/sim/recorder.js';

export interface LinkUnderTest {
  kind: SimLinkKind;
  fleet: SimFleet;
  camera: SimCamera;
  serial: string;
  publicKeyRaw: Buffer;
  /** A fresh dock-side transport (not yet opened) to the docked camera. */
  dockTransport(): Transport;
  cleanup(): Promise<void>;
}

export interface LinkOptions {
  clips?: number;
  seed?: number;
  faults?: string;
  record?: Partial<Pick<RecordOptions, 'mode' | 'syntheticBytes' | 'video'>>;
  linkRateBytesPerS?: number;
  latencyMs?: number;
}

export async function openLink(kind: SimLinkKind, options: LinkOptions = {}): Promise<LinkUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), `dockside-${kind}-`));
  const fleet = await SimFleet.open({
    dir,
    cameras: 1,
    clips: options.clips ?? 3,
    seed: options.seed ?? 11,
    faults: parseFaults(options.faults),
    link: kind,
    record: options.record ?? { mode: 'synthetic', syntheticBytes: 300_000 },
    linkRateBytesPerS: options.linkRateBytesPerS,
    latencyMs: options.latencyMs,
  });
  const [docked] = await fleet.dockAll();
  const camera = fleet.cameras[0]!;
  let loopbackUsed = false;
  fleet.on('docked', () => (loopbackUsed = false));
  return {
    kind,
    fleet,
    camera,
    serial: docked!.serial,
    publicKeyRaw: docked!.publicKeyRaw,
    dockTransport(): Transport {
      if (kind === 'pty') return new SerialTransport(fleet.dockedCameras()[0]!.path);
      // A loopback pair has one dock end per docking; re-dock for another.
      if (loopbackUsed) throw new Error('loopback: re-dock the camera for a second transport');
      loopbackUsed = true;
      return fleet.dockedCameras()[0]!.transport!;
    },
    async cleanup(): Promise<void> {
      await fleet.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
