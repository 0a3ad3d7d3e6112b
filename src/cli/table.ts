/** cli-table3 with borders coloured only when chalk says colour is on (TTY, no NO_COLOR). */
import Table from 'cli-table3';
import chalk from 'chalk';

export function makeTable(head: string[], opts: { colAligns?: ('left' | 'right' | 'center')[] } = {}): Table.Table {
  const colour = chalk.level > 0;
  return new Table({
    head: head.map((h) => (colour ? chalk.bold(h) : h)),
    style: { head: [], border: colour ? ['grey'] : [], compact: false },
    ...(opts.colAligns ? { colAligns: opts.colAligns } : {}),
  }) as Table.Table;
}
