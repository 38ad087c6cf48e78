// Builds dist/cjs with tsc, then thin ESM entry points that re-export the CommonJS build, so that `import`
// and `require` share one module instance (no dual-package hazard).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });

const require = createRequire(import.meta.url);
for (const entry of ['index', 'express/index', 'koa/index', 'fastify/index']) {
  const cjs = join(root, 'dist', 'cjs', `${entry}.js`);
  const esm = join(root, 'dist', 'esm', `${entry}.mjs`);
  mkdirSync(dirname(esm), { recursive: true });
  const names = Object.keys(require(cjs)).filter((n) => n !== 'default' && n !== '__esModule');
  const from = relative(dirname(esm), cjs).split('\\').join('/');
  writeFileSync(esm, `export { ${names.join(', ')} } from '${from.startsWith('.') ? from : `./${from}`}';\n`);
  const dts = relative(dirname(esm), cjs.replace(/\.js$/, '.js')).split('\\').join('/');
  writeFileSync(esm.replace(/\.mjs$/, '.d.mts'), `export * from '${dts.startsWith('.') ? dts : `./${dts}`}';\n`);
}
