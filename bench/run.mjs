// npm run bench: every benchmark, each printing ratios against a baseline measured in the same run.
// Knobs: ROUNDS (codec), PAIRS and MS (connections, audit).
console.log(
  `Node ${process.version}, ${(await import('node:os')).cpus().length} CPUs: ${(await import('node:os')).cpus()[0]?.model}`,
);
await import('./codec.mjs');
await import('./connections.mjs');
await import('./audit.mjs');
await import('./fastify.mjs');
await import('./query.mjs');
