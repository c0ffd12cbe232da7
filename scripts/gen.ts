// `npm run gen -- <preset> <out> [--seed N]`: writes a generated checkpoint (see src/core/generate.ts).
import { join } from 'node:path';
import { PRESETS, llamaConfig, llamaTensors, manyTensors, writeGgufModel, writeSafetensorsModel, writeText, type PresetName } from '../src/core/generate';

const USAGE = `usage: npm run gen -- <preset> <out> [--seed N] [--format safetensors|gguf]
presets: ${Object.keys(PRESETS).join(', ')} (a folder of safetensors + config.json, or with --format gguf one .gguf file),
         gguf-100k (a .gguf file with 100,000 small tensors)`;

function main(argv: string[]): number {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv.splice(seedAt, 2)[1]) : 1234;
  const formatAt = argv.indexOf('--format');
  const format = formatAt >= 0 ? argv.splice(formatAt, 2)[1] : 'safetensors';
  const [preset, out] = argv;
  const known = preset in PRESETS || preset === 'gguf-100k';
  if (!preset || !out || !known || !Number.isInteger(seed) || (format !== 'safetensors' && format !== 'gguf')) {
    console.error(USAGE);
    return 1;
  }
  const t0 = performance.now();
  if (preset === 'gguf-100k') {
    writeGgufModel(out, manyTensors(25_000), 'F16', seed);
  } else {
    const p = PRESETS[preset as PresetName];
    if (format === 'gguf') writeGgufModel(out, llamaTensors(p.shape), p.dtype, seed);
    else {
      writeSafetensorsModel(out, llamaTensors(p.shape), p.dtype, seed, p.shardBytes);
      writeText(join(out, 'config.json'), JSON.stringify(llamaConfig(p.shape, p.dtype), null, 2));
    }
  }
  console.log(`${preset}: written to ${out} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
