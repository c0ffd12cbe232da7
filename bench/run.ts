// `npm run bench`: every benchmark, each printing its figures next to a peer measured in the same run.
import { benchDequant } from './dequant';
import { benchForward } from './forward';
import { benchInspect } from './inspect';
import { benchInspector } from './inspector';
import { benchQuantizeModel } from './quantize-model';
import { benchQuantize } from './quantize';
import { benchRtn } from './rtn';
import { benchSensitivity } from './sensitivity';
import { benchStats } from './stats';

const BENCHES: Record<string, () => Promise<void>> = {
  inspect: benchInspect,
  inspector: benchInspector,
  stats: benchStats,
  dequant: benchDequant,
  rtn: benchRtn,
  quantize: benchQuantize,
  sensitivity: benchSensitivity,
  quantizeModel: benchQuantizeModel,
  forward: benchForward,
};

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  for (const [name, run] of Object.entries(BENCHES)) {
    if (only.length && !only.includes(name)) continue;
    await run();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
