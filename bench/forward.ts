// Forward pass: prompt-processing tokens/s of the generated Llama-shaped model (hidden 2048, 8 layers, BF16)
// with its matrix products in the kernel pool (2 workers) beside plain TypeScript doing the same products.
import { LlamaModel } from '../src/core/model/llama';
import { PoolMatmul } from '../src/kernel/matmul';
import { KernelPool } from '../src/kernel/pool';
import { generatedModel } from './common';

const PROMPT_TOKENS = 16;

export async function benchForward(): Promise<void> {
  const dir = generatedModel('llama-1gb');
  const tokens = Int32Array.from({ length: PROMPT_TOKENS }, (_, i) => (i * 7919) % 32000);
  const run = async (backend?: PoolMatmul): Promise<number> => {
    // Weights stream per layer (not cached), as a model larger than memory would.
    const model = await LlamaModel.load(dir, { cacheWeights: false });
    const t0 = performance.now();
    await model.forward(tokens, { backend, logitsFrom: PROMPT_TOKENS - 1 });
    return (performance.now() - t0) / 1000;
  };
  const pool = new KernelPool({ size: 2 });
  let kernelSeconds: number;
  try {
    kernelSeconds = await run(new PoolMatmul(pool));
  } finally {
    pool.dispose();
  }
  const tsSeconds = await run();
  const kernelRate = PROMPT_TOKENS / kernelSeconds;
  const tsRate = PROMPT_TOKENS / tsSeconds;
  console.log(`forward llama-1gb (${PROMPT_TOKENS}-token prompt, exact mode):`);
  console.log(`  kernel pool, 2 workers: ${kernelRate.toFixed(2)} tokens/s (${kernelSeconds.toFixed(2)} s)`);
  console.log(`  plain TypeScript      : ${tsRate.toFixed(2)} tokens/s (${tsSeconds.toFixed(2)} s)`);
  console.log(`  ratio                 : ${(kernelRate / tsRate).toFixed(1)}×`);
}
