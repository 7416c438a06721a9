/** `dockside custody verify`: check the whole chain of custody offline. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { verifyCustody, type CustodyReport } from '../custody/verifyCustody.js';
import { EXIT, formatBytes, printJson } from './output.js';

function render(r: CustodyReport): string {
  const out: string[] = [`Dock key    ed25519 sha256:${r.dockFingerprint}`];
  out.push(`Ledger      ${r.ledger.entries} entries, ${r.ledger.problems.length === 0 ? 'hash chain and every dock signature verify' : `${r.ledger.problems.length} PROBLEMS`}`);
  for (const p of r.ledger.problems) out.push(`  ! line ${p.line}${p.seq !== null ? ` (seq ${p.seq})` : ''}: ${p.problem}`);
  out.push(`Objects     ${r.objects.checked} clips in the vault (${formatBytes(r.objects.bytes)}), ${r.objects.problems.length === 0 ? 'every hash, device signature and custody record holds' : `${r.objects.problems.length} PROBLEMS`}`);
  for (const p of r.objects.problems) out.push(`  ! ${p.serial}/${p.clipId}: ${p.problem}`);
  const chainState = r.chain.problems.length > 0 ? `${r.chain.problems.length} UNRECORDED BREAKS` : r.chain.gaps.length > 0 ? 'no unrecorded breaks' : 'continuous';
  out.push(`Chain       ${chainState}${r.chain.gaps.length ? `; ${r.chain.gaps.length} gap(s) recorded at ingest (clips missing on the camera)` : ''}`);
  for (const p of [...r.chain.problems, ...r.chain.gaps]) out.push(`  ${r.chain.problems.includes(p) ? '!' : '~'} ${p.serial}/${p.clipId}: ${p.problem}`);
  if (r.remote.clips > 0) out.push(`Remote      ${r.remote.clips} clips stored in ${r.remote.sinks.join(', ')}, not checked here: copy the bucket (e.g. aws s3 sync) and give --vault DIR`);
  out.push(`Released    ${r.released} clips, each after its checked store receipt`);
  out.push(`Quarantined ${r.quarantined.length}`);
  for (const q of r.quarantined) out.push(`  - ${q.serial}/${q.clipId}: ${q.reason}`);
  out.push(r.ok ? 'Custody verified.' : 'CUSTODY DOES NOT VERIFY: see the problems above.');
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  const custody = program.command('custody').description('Chain-of-custody tools');
  custody
    .command('verify')
    .description('Recompute the whole ledger (hash chain, dock signatures) and check every stored clip (hash, device signature, chain), offline')
    .option('--data-dir <dir>', 'the dock data directory', './var')
    .option('--vault <dir...>', 'check the clips in this directory (a copy of the vault or of an s3:// sink, laid out <serial>/<clipId>.*) instead of the vault the ledger names')
    .option('--json', 'one JSON document on stdout')
    .action(async (o: { dataDir: string; vault?: string[]; json?: boolean }) => {
      const report = await verifyCustody(resolve(o.dataDir), { vaults: o.vault?.map((v) => resolve(v)) });
      if (o.json) printJson(report);
      else process.stdout.write(render(report));
      process.exitCode = report.ok ? EXIT.OK : EXIT.CHECK_FAILED;
    });
}
