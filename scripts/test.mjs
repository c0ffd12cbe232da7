// Checks layering and types, builds, runs the unit tests on plain Node (node:test, TypeScript through
// tsx), then the end-to-end tests.
// `npm test -- --unit` runs only the unit tests; `npm test -- --e2e` only the end-to-end ones.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.includes('--unit') ? 'unit' : args.includes('--e2e') ? 'e2e' : 'all';

function find(dir, suffix) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p, suffix));
    else if (name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root });
  return r.status ?? 1;
}

const tsc = join(root, 'node_modules/typescript/bin/tsc');
let status =
  run(process.execPath, [join(root, 'scripts/lint.mjs')]) ||
  run(process.execPath, [tsc, '-p', 'tsconfig.node.json', '--noEmit']) ||
  run(process.execPath, [tsc, '-p', 'tsconfig.webview.json', '--noEmit']) ||
  run(process.execPath, [join(root, 'scripts/build.mjs')]);
if (status !== 0) process.exit(status);

if (only !== 'e2e') {
  const files = find(join(root, 'test'), '.test.ts').filter((f) => !f.includes(`${join('test', 'e2e')}`));
  status = run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...files]) || status;
}
if (only !== 'unit') {
  const files = find(join(root, 'test/e2e'), '.e2e.ts');
  if (files.length) status = run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files]) || status;
}
process.exit(status);
