/**
 * `dockside firmware <camera> <package>`: push a signed firmware package to a docked
 * camera. The package is checked here first (signed by the model's vendor key, not
 * damaged), and again by the daemon against the camera's model, before a byte is
 * sent; the camera checks it once more. The update counts only when the camera
 * comes back reporting the new version, and it is recorded in the custody ledger.
 *
 * `dockside firmware pack`: make a package from an image and a vendor key (for
 * firmware engineers and the simulator's tests).
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { askDaemon } from './daemonClient.js';
import { writeFileDurableSync } from '../durableFs.js';
import { DockError } from '../errors.js';
import { findCamera } from '../ingest/cameraFinder.js';
import { withCamera } from '../ingest/cameraProbe.js';
import { pushFirmware, type FirmwareResult } from '../ingest/cameraOps.js';
import { readFirmwarePackageFile, vendorKeyFor } from '../ingest/Daemon.js';
import { openDataDir } from '../ingest/dataDir.js';
import { packFirmware, verifyFirmwarePackage, type FirmwarePackage } from '../protocol/firmwarePackage.js';
import { DEFAULT_DATA_DIR, EXIT, formatBytes, printJson } from './output.js';

interface FirmwareOptions {
  dataDir: string;
  portsDir?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const fw = program
    .command('firmware')
    .description('Push a signed firmware package to a docked camera (refused before anything is sent if it is unsigned, damaged or for another model)')
    .argument('[camera]', 'serial number or port path')
    .argument('[package]', 'the signed firmware package (.dsfw) as the vendor shipped it')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var): its running daemon does the update when it runs', DEFAULT_DATA_DIR)
    .option('--ports-dir <dir>', 'with no daemon: scan only this directory of serial port links')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', '\nThe camera must be offloaded first (state done in `dockside devices`); the daemon refuses an update mid-offload (CAMERA_BUSY, exit 1).\nExit status: 0 updated, 4 the package or the camera refused, 3 no such camera, 1 another error (busy, link lost).')
    .action(async (target: string | undefined, pkgPath: string | undefined, o: FirmwareOptions) => {
      if (!target || !pkgPath) throw new DockError('CLI_USAGE', 'usage: dockside firmware <camera> <package>  (or `dockside firmware pack --help`)');
      const path = resolve(pkgPath);
      const pkg = await readFirmwarePackageFile(path, 'dockside');
      // Checked against the vendor key of the model it says it is for, before any camera is asked.
      verifyFirmwarePackage(pkg, pkg.model, vendorKeyFor(pkg.model), pkgPath);
      const dataDir = resolve(o.dataDir);
      if (!o.json) process.stdout.write(`Package ${pkgPath}: firmware ${pkg.version} for ${pkg.model}, ${formatBytes(pkg.image.length)}, vendor signature verifies.\n`);
      const daemon = await askDaemon<FirmwareResult>(dataDir, 'firmware', { serial: target, path }, 180_000);
      const result = daemon?.result ?? (await direct(target, pkg, pkgPath, dataDir, o));
      if (o.json) printJson({ daemon: daemon !== undefined, ...result });
      else process.stdout.write(`Camera ${result.serial} updated: firmware ${result.from} → ${result.to} (${formatBytes(result.bytes)} in ${result.seconds.toFixed(1)} s), confirmed by its HELLO after restart.\n`);
      process.exitCode = EXIT.OK;
    });

  fw.command('pack')
    .description('Make a signed firmware package from an image and the vendor key (firmware engineers, tests)')
    .argument('<image>', 'the raw firmware image')
    .requiredOption('--key <pem>', "the vendor's Ed25519 private key (PKCS#8 PEM)")
    .requiredOption('--model <model>', 'the camera model it is for, exactly as its HELLO says it (e.g. "Sentinel BC4")')
    .requiredOption('--fw-version <version>', 'the firmware version it installs (what the camera reports after the update)')
    .requiredOption('--out <file>', 'where to write the package')
    .action((image: string, o: { key: string; model: string; fwVersion: string; out: string }) => {
      if (existsSync(o.out)) throw new DockError('CLI_USAGE', `${o.out} exists; give another --out`);
      const key = createPrivateKey(readFileSync(o.key));
      const bytes = packFirmware(readFileSync(image), o.model, o.fwVersion, key);
      writeFileDurableSync(o.out, bytes);
      process.stdout.write(`${o.out}: firmware ${o.fwVersion} for ${o.model}, ${formatBytes(bytes.length)}\n`);
    });
}

/** No daemon: open the camera here, push with a progress bar on a terminal, and record it in the ledger if this dock has one. */
async function direct(target: string, pkg: FirmwarePackage, source: string, dataDir: string, o: FirmwareOptions): Promise<FirmwareResult> {
  const candidate = await findCamera(target, { portsDir: o.portsDir });
  const bar = !o.json && process.stdout.isTTY ? new cliProgress.SingleBar({ format: ' firmware |{bar}| {percentage}% {value}/{total} bytes ETA {eta_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(pkg.image.length, 0);
  let result: FirmwareResult;
  try {
    result = await withCamera(candidate.createTransport(), async (s) => {
      verifyFirmwarePackage(pkg, s.info.model, vendorKeyFor(s.info.model), source);
      const key = await s.authenticate(); // the same device must prove the same key after its restart
      return pushFirmware(s, pkg, (sent) => bar?.update(sent), key);
    });
  } finally {
    bar?.stop();
  }
  if (existsSync(join(dataDir, 'state.db'))) {
    const dir = openDataDir(dataDir, 'dockside firmware');
    try {
      dir.ledger.append('firmware_updated', { serial: result.serial, details: { from: result.from, to: result.to, packageSha256: pkg.sha256.toString('hex'), by: 'technician' } });
    } finally {
      await dir.close();
    }
  }
  return result;
}
