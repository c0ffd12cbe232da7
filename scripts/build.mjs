// One esbuild build per entry point, plus the AssemblyScript kernel. `--watch` is not offered:
// the kernel build dominates and is 4 s.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
mkdirSync(dist, { recursive: true });
const production = process.argv.includes('--production');

const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'warning',
  external: ['vscode'],
};

const entries = [
  { ...node, entryPoints: [join(root, 'src/extension/main.ts')], outfile: join(dist, 'extension.js') },
  { ...node, entryPoints: [join(root, 'src/kernel/worker.ts')], outfile: join(dist, 'worker.js') },
  { ...node, entryPoints: [join(root, 'src/cli/main.ts')], outfile: join(dist, 'cli.js'), banner: { js: '#!/usr/bin/env node' } },
];
for (const name of ['inspector', 'compare', 'plan', 'activations']) {
  const entry = join(root, `webview/${name}/main.ts`);
  if (!existsSync(entry)) continue;
  entries.push({
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: production ? false : 'linked',
    minify: production,
    logLevel: 'warning',
    entryPoints: [entry],
    outfile: join(dist, `webview/${name}.js`),
  });
}

const kernelEntry = join(root, 'src/kernel/assembly/index.ts');
if (existsSync(kernelEntry)) {
  // SIMD128 + threads only (no relaxed SIMD, no memory64: VS Code 1.100's Node 20); the kernel never
  // allocates (runtime stub), callers pass scratch space in as pointers (../shared/docs/KERNEL.md).
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules/assemblyscript/bin/asc.js'),
      kernelEntry,
      '--outFile', join(dist, 'kernel.wasm'),
      '--runtime', 'stub', '--noAssert', '-O3', '--converge',
      '--enable', 'simd', '--enable', 'threads',
      '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
      '--noExportMemory',
    ],
    { stdio: 'inherit', cwd: root },
  );
}

await Promise.all(entries.filter((e) => existsSync(e.entryPoints[0])).map((e) => build(e)));
if (existsSync(join(root, 'node_modules/@vscode-elements/elements/dist/bundled.js'))) {
  mkdirSync(join(dist, 'webview'), { recursive: true });
  copyFileSync(join(root, 'node_modules/@vscode-elements/elements/dist/bundled.js'), join(dist, 'webview/elements.js'));
}
// ONNX Runtime Web: its wasm binary and the loader module it imports at run time are served from
// dist/ort/ (the worker sets env.wasm.wasmPaths there), so nothing is fetched from a network.
const ortDist = join(root, 'node_modules/onnxruntime-web/dist');
if (existsSync(ortDist)) {
  mkdirSync(join(dist, 'ort'), { recursive: true });
  for (const f of ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs']) copyFileSync(join(ortDist, f), join(dist, 'ort', f));
}
console.log(`built ${dist}`);
