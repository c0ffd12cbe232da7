import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, cliPath, generatedModel, printTable, runMeasured } from './common';

/** Whole-model quantization and comparison through the CLI (2 workers), with throughput and peak RSS. */
export async function benchQuantizeModel(): Promise<void> {
  const model = generatedModel('llama-1gb');
  const inputBytes = 983_633_920;
  const rows: Array<Array<string | number>> = [];
  for (const [type, extra] of [['Q8_0', []], ['Q4_K', ['--pure']]] as const) {
    const out = join(benchDir, `bench-${type}.gguf`);
    rmSync(out, { force: true });
    const r = runMeasured(process.execPath, [cliPath, 'quantize', model, '-o', out, '--type', type, ...extra]);
    rows.push([`quantize → ${type}`, r.seconds, inputBytes / 1e6 / r.seconds, r.peakRssMB]);
    if (type === 'Q8_0') {
      const d = runMeasured(process.execPath, [cliPath, 'diff', model, out, '--json']);
      rows.push(['diff BF16 vs Q8_0', d.seconds, inputBytes / 1e6 / d.seconds, d.peakRssMB]);
    }
    rmSync(out, { force: true });
  }
  printTable('quantize the generated ~1 GB BF16 model (2 workers)', ['job', 'seconds', 'MB/s of input', 'peak RSS MB'], rows);
}
