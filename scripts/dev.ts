// Run the CLI from the TypeScript sources (no build): `npx tsx scripts/dev.ts <command> ...`.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
