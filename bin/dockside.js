#!/usr/bin/env node
// Entry point for `npx dockside`: runs the compiled CLI (npm run build makes dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('dockside: dist/ is missing. Run `npm run build` in the checkout first.\n');
  process.exit(70);
}
await import(main.href);
