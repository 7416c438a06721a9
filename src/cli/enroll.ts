/**
 * `dockside enroll`: trust a camera's device key, so the daemon ingests from it.
 * The camera proves it holds the key (AUTH over a fresh nonce) before it is shown;
 * the technician compares the fingerprint with the one the camera or its paperwork
 * shows, and confirms.
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { DockError } from '../errors.js';
import { findCamera } from '../ingest/cameraFinder.js';
import { withCamera } from '../ingest/cameraProbe.js';
import { openDataDir } from '../ingest/dataDir.js';
import { EXIT, printJson, table, DEFAULT_DATA_DIR } from './output.js';
import { askDaemon } from './daemonClient.js';

interface Identified {
  serial: string;
  model: string;
  path: string;
  fingerprint: string;
  enrolled: { fingerprint: string; revoked: boolean } | null;
}

interface EnrollOptions {
  dataDir: string;
  portsDir?: string;
  yes?: boolean;
  list?: boolean;
  revoke?: string;
  json?: boolean;
}

const fingerprint = (raw: Buffer): string => createHash('sha256').update(raw).digest('hex');

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw new DockError('CLI_USAGE', 'confirmation needs a terminal; add --yes to enroll without asking');
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export function register(program: Command): void {
  program
    .command('enroll')
    .description('Trust a camera (by serial or port path) so the daemon ingests from it; --list shows enrolled cameras, --revoke stops trusting one')
    .argument('[camera]', 'serial number or port path of a docked camera')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var)', DEFAULT_DATA_DIR)
    .option('--ports-dir <dir>', 'scan only this directory of serial port links')
    .option('--yes', 'do not ask for confirmation')
    .option('--list', 'list enrolled cameras')
    .option('--revoke <serial>', 'stop trusting a camera (its clips already stored stay stored)')
    .option('--json', 'one JSON document on stdout')
    .action(async (target: string | undefined, o: EnrollOptions) => {
      if (await throughDaemon(target, o)) return;
      const dir = openDataDir(o.dataDir, 'dockside enroll');
      try {
        if (o.list) {
          const cams = dir.store.cameras().map((c) => ({ serial: c.serial, model: c.model, fingerprint: fingerprint(c.publicKey), enrolled: new Date(c.enrolledMs).toISOString(), revoked: c.revoked }));
          if (o.json) printJson({ cameras: cams });
          else process.stdout.write(`${table(cams.map((c) => [c.serial, c.model, `sha256:${c.fingerprint.slice(0, 16)}…`, c.enrolled, c.revoked ? 'REVOKED' : '']), ['SERIAL', 'MODEL', 'KEY', 'ENROLLED', ''])}\n`);
          return;
        }
        if (o.revoke) {
          if (!dir.store.camera(o.revoke)) throw new DockError('HAL_NOT_FOUND', `no enrolled camera ${o.revoke}; see \`dockside enroll --list\``);
          dir.ledger.append('revoked', { serial: o.revoke, details: { by: 'technician' } });
          dir.store.revoke(o.revoke);
          if (o.json) printJson({ revoked: o.revoke });
          else process.stdout.write(`Revoked ${o.revoke}: the daemon refuses it from now on.\n`);
          return;
        }
        if (!target) throw new DockError('CLI_USAGE', 'name the camera to enroll (serial or port path), or use --list or --revoke');
        const candidate = await findCamera(target, { portsDir: o.portsDir });
        const { serial, model, key } = await withCamera(candidate.createTransport(), async (s) => ({ serial: s.serial, model: s.info.model, key: await s.authenticate() }));
        const fp = fingerprint(key);
        const existing = dir.store.camera(serial);
        if (!o.json) {
          process.stdout.write(`Camera ${serial} (${model}) at ${candidate.path}\nDevice key ed25519 sha256:${fp}\n`);
          if (existing && !existing.publicKey.equals(key)) process.stdout.write(`WARNING: ${serial} was enrolled with a different key (sha256:${fingerprint(existing.publicKey)}). Enrolling replaces it.\n`);
        }
        if (!o.yes && !(await confirm('Enroll this camera? [y/N] '))) {
          process.stdout.write('Not enrolled.\n');
          process.exitCode = EXIT.CHECK_FAILED;
          return;
        }
        dir.ledger.append('enrolled', { serial, details: { fingerprint: fp, by: 'technician', path: candidate.path, replaced: existing ? fingerprint(existing.publicKey) : null } });
        dir.store.enroll(serial, model, key);
        if (o.json) printJson({ enrolled: serial, model, fingerprint: fp });
        else process.stdout.write(`Enrolled ${serial}.\n`);
      } finally {
        await dir.close();
      }
    });
}

/**
 * With a daemon running, enrollment goes through it: it holds the camera's port (an
 * unenrolled camera waits in its bay, refused and charging), it owns the ledger, and it
 * admits the camera as soon as it is enrolled. Returns false when no daemon runs.
 */
async function throughDaemon(target: string | undefined, o: EnrollOptions): Promise<boolean> {
  const dataDir = resolve(o.dataDir);
  if (o.list) {
    const r = await askDaemon<{ cameras: { serial: string; model: string; fingerprint: string; enrolledMs: number; revoked: boolean }[] }>(dataDir, 'enroll.list');
    if (!r) return false;
    const cams = r.result.cameras.map((c) => ({ serial: c.serial, model: c.model, fingerprint: c.fingerprint, enrolled: new Date(c.enrolledMs).toISOString(), revoked: c.revoked }));
    if (o.json) printJson({ cameras: cams });
    else process.stdout.write(`${table(cams.map((c) => [c.serial, c.model, `sha256:${c.fingerprint.slice(0, 16)}…`, c.enrolled, c.revoked ? 'REVOKED' : '']), ['SERIAL', 'MODEL', 'KEY', 'ENROLLED', ''])}\n`);
    return true;
  }
  if (o.revoke) {
    const r = await askDaemon<{ revoked: string }>(dataDir, 'enroll.revoke', { serial: o.revoke });
    if (!r) return false;
    if (o.json) printJson(r.result);
    else process.stdout.write(`Revoked ${o.revoke}: the daemon refuses it from its next dock on.\n`);
    return true;
  }
  if (!target) return false; // the usage error below says what to give
  const camera = target.includes('/') ? resolve(target) : target;
  const id = await askDaemon<Identified>(dataDir, 'enroll.identify', { camera }, 30_000);
  if (!id) return false;
  const c = id.result;
  if (!o.json) {
    process.stdout.write(`Camera ${c.serial} (${c.model}) at ${c.path}\nDevice key ed25519 sha256:${c.fingerprint}\n`);
    if (c.enrolled && c.enrolled.fingerprint !== c.fingerprint) process.stdout.write(`WARNING: ${c.serial} was enrolled with a different key (sha256:${c.enrolled.fingerprint}). Enrolling replaces it.\n`);
  }
  if (!o.yes && !(await confirm('Enroll this camera? [y/N] '))) {
    process.stdout.write('Not enrolled.\n');
    process.exitCode = EXIT.CHECK_FAILED;
    return true;
  }
  const done = await askDaemon<{ enrolled: string; model: string; fingerprint: string; admitted: boolean }>(dataDir, 'enroll.confirm', { camera, fingerprint: c.fingerprint }, 30_000);
  if (!done) throw new DockError('CONFIG_INVALID', `the daemon for ${dataDir} stopped before the enrollment was confirmed; nothing was enrolled. Run the command again`);
  if (o.json) printJson(done.result);
  else process.stdout.write(`Enrolled ${c.serial}.${done.result.admitted ? ' The daemon is offloading it now.' : ''}\n`);
  return true;
}
