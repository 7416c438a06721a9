/**
 * dockside: the docking-station daemon and the technician's tools, one program.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { register as registerSim } from './sim.js';
import { register as registerDevices } from './devices.js';
import { register as registerDiag } from './diag.js';
import { EXIT, reportError } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('dockside')
    .description('Ingest agent for body-worn camera docking stations: pull, verify, custody, store, release')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerSim(program);
  registerDevices(program);
  registerDiag(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    process.exitCode = reportError(err, argv.includes('--json'));
  }
}

await main(process.argv);
