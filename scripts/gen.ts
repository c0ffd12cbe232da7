// `npm run gen -- <preset> <out> [--seed N]`: writes a generated checkpoint (see src/core/generate.ts).
import { join } from 'node:path';
import { PRESETS, llamaConfig, llamaTensors, writeSafetensorsModel, writeText, type PresetName } from '../src/core/generate';

const USAGE = `usage: npm run gen -- <preset> <out-folder> [--seed N]
presets: ${Object.keys(PRESETS).join(', ')}`;

function main(argv: string[]): number {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv.splice(seedAt, 2)[1]) : 1234;
  const [preset, out] = argv;
  if (!preset || !out || !(preset in PRESETS) || !Number.isInteger(seed)) {
    console.error(USAGE);
    return 1;
  }
  const p = PRESETS[preset as PresetName];
  const t0 = performance.now();
  const files = writeSafetensorsModel(out, llamaTensors(p.shape), p.dtype, seed, p.shardBytes);
  writeText(join(out, 'config.json'), JSON.stringify(llamaConfig(p.shape, p.dtype), null, 2));
  console.log(`${preset}: ${files.length} file(s) in ${out} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
