// Layering rules tsc cannot express: src/core and src/kernel never import vscode; src/shared (loaded
// by webviews and workers alike) imports neither vscode nor node built-ins; webviews import no node code.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/g;

const RULES = [
  { dir: 'src/core', forbid: (m) => m === 'vscode', why: 'src/core knows nothing of VS Code' },
  { dir: 'src/kernel', forbid: (m) => m === 'vscode', why: 'the kernel runs in workers and the CLI' },
  { dir: 'src/cli', forbid: (m) => m === 'vscode', why: 'the CLI runs without VS Code' },
  { dir: 'src/shared', forbid: (m) => m === 'vscode' || m.startsWith('node:') || /^(fs|path|os|worker_threads|crypto)$/.test(m), why: 'src/shared is loaded by webviews and workers' },
  { dir: 'webview', forbid: (m) => m === 'vscode' || m.startsWith('node:') || m.includes('/core/') || m.includes('/kernel/'), why: 'webviews run in a browser and get summaries only' },
];

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const problems = [];
for (const rule of RULES) {
  const dir = join(root, rule.dir);
  let list;
  try {
    list = files(dir);
  } catch {
    continue;
  }
  for (const file of list) {
    if (file.includes(`${join('src', 'kernel', 'assembly')}`)) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (rule.forbid(spec)) problems.push(`${relative(root, file)}: imports '${spec}' (${rule.why})`);
    }
  }
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('lint: layering rules hold');
