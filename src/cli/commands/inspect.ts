import type { Command } from 'commander';
import chalk from 'chalk';
import { loadModel } from '../../onnx/load.js';
import { inventory, type Inventory } from '../../onnx/inventory.js';
import { makeTable } from '../table.js';
import { formatBytes, formatCount, formatShape } from '../format-numbers.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show what a model holds: IR version, opsets, I/O shapes, op histogram, parameters by dtype, external data, functions')
    .argument('<model>', 'ONNX model file')
    .option('--json', 'print the inventory as JSON')
    .action((file: string, opts: { json?: boolean }) => {
      const inv = inventory(loadModel(file));
      process.stdout.write(opts.json ? `${JSON.stringify(inv, null, 2)}\n` : renderInventory(inv));
    });
}

export function renderInventory(inv: Inventory): string {
  const lines: string[] = [];
  lines.push(chalk.bold(inv.path ?? '<memory>'));
  lines.push(`IR version ${inv.irVersion}; opsets ${Object.entries(inv.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`);
  if (inv.producer.name) lines.push(`producer ${inv.producer.name} ${inv.producer.version}`.trimEnd());
  lines.push(`${inv.nodes} nodes${inv.subgraphs ? ` (in ${inv.subgraphs + 1} graphs)` : ''}; ${formatCount(inv.parameters.count)} parameters, ${formatBytes(inv.parameters.bytes)}`);
  const io = makeTable(['', 'name', 'dtype', 'shape']);
  for (const v of inv.inputs) io.push(['input', v.name, v.dtype, formatShape(v.shape)]);
  for (const v of inv.outputs) io.push(['output', v.name, v.dtype, formatShape(v.shape)]);
  lines.push(io.toString());
  const params = makeTable(['dtype', 'tensors', 'elements', 'bytes']);
  for (const [d, e] of Object.entries(inv.parameters.byDtype)) params.push([d, e.tensors, formatCount(e.count), formatBytes(e.bytes)]);
  lines.push(params.toString());
  lines.push(`ops: ${Object.entries(inv.opTypes).map(([op, n]) => `${op}×${n}`).join(', ')}`);
  for (const f of inv.externalFiles) lines.push(`external data: ${f.file} (${f.tensors} tensors, ${formatBytes(f.bytes)})`);
  for (const f of inv.functions) lines.push(`function: ${f.domain ? `${f.domain}.` : ''}${f.name} (${f.nodes} nodes)`);
  return `${lines.join('\n')}\n`;
}
