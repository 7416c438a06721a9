/**
 * dockside: the docking-station daemon and the technician's tools, one program.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { register as registerSim } from './sim.js';
import { register as registerDevices } from './devices.js';
import { register as registerDiag } from './diag.js';
import { register as registerRun } from './run.js';
import { register as registerCustody } from './custody.js';
import { register as registerVerify } from './verify.js';
import { register as registerEnroll } from './enroll.js';
import { register as registerQueue } from './queue.js';
import { register as registerConfig } from './config.js';
import { register as registerPull } from './pull.js';
import { register as registerLogs } from './logs.js';
import { register as registerFirmware } from './firmware.js';
import { EXIT, reportError } from './output.js';
import { DockError } from '../errors.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('dockside')
    .description('Ingest agent for body-worn camera docking stations: pull, verify, custody, store, release')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerRun(program);
  registerSim(program);
  registerDevices(program);
  registerDiag(program);
  registerEnroll(program);
  registerCustody(program);
  registerVerify(program);
  registerQueue(program);
  registerConfig(program);
  registerPull(program);
  registerLogs(program);
  registerFirmware(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const program = buildProgram();
  // With --json, usage errors come out as JSON on stdout like every other error.
  if (json) {
    const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
    for (const cmd of all(program)) cmd.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode !== 0 && json) reportError(new DockError('CLI_USAGE', err.message.replace(/^error: /, '')), true);
      process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    process.exitCode = reportError(err, json);
  }
}

await main(process.argv);
