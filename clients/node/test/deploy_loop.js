'use strict';
// Deploys a command N times in a row: node deploy_loop.js SERVERSWAP_BIN SOCKET N -- CMD...
// Exit 0 when every deploy exited 0. Used as the deploy command of `serverswap verify`.
const { spawnSync } = require('child_process');

const [binary, socket, count] = process.argv.slice(2, 5);
const command = process.argv.slice(process.argv.indexOf('--') + 1);
for (let i = 0; i < Number(count); i++) {
  const done = spawnSync(binary, ['--socket', socket, '-q', '--', ...command],
    { stdio: 'inherit', timeout: 60000 });
  if (done.status !== 0) {
    process.stderr.write(`deploy_loop: deploy ${i} exited ${done.status} ${done.signal || ''}\n`);
    process.exit(1);
  }
}
process.stderr.write(`deploy_loop: ${count} deploys ok\n`);
