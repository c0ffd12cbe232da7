import { openModel } from '../src/core/readers';
import { cliPath, generatedManyTensorGguf, generatedModel, medianMs, printTable, runMeasured } from './common';

/** Time to inspect (open + read every header) and the CLI's peak RSS, per generated model. */
export async function benchInspect(): Promise<void> {
  const cases: Array<[string, string, number]> = [
    ['llama-1gb sharded safetensors (BF16)', generatedModel('llama-1gb'), 100],
    ['100,000-tensor GGUF', generatedManyTensorGguf(), 250],
  ];
  const rows: Array<Array<string | number>> = [];
  for (const [label, path, goalMs] of cases) {
    await openModel(path); // warm the page cache
    const ms = await medianMs(7, () => openModel(path));
    const child = runMeasured(process.execPath, [cliPath, 'inspect', path, '--json']);
    rows.push([label, ms, goalMs, child.seconds * 1000, child.peakRssMB]);
  }
  printTable('inspect', ['model', 'open ms (median of 7)', 'goal ms', 'CLI wall ms', 'CLI peak RSS MB'], rows);
}
