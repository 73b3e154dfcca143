'use strict';
// Outside serverswap (no SERVERSWAP_SOCKET): readyFor calls back at once without a
// handle, listen() binds normally, the other calls do nothing, no relay is started.
const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const path = require('path');
const { cleanEnv } = require('./support');

const SCRIPT = `
const http = require('http');
const serverswap = require(${JSON.stringify(path.dirname(__dirname))});
let calledBack = false;
serverswap.readyFor('127.0.0.1:0', (handle) => { calledBack = handle === undefined; });
serverswap.onTakedown('127.0.0.1:0', () => {});
serverswap.serverUp();
serverswap.fail('ignored');
(async () => {
  if (!calledBack) throw new Error('readyFor did not call back at once without a handle');
  if (await serverswap.readyFor(':0') !== undefined) throw new Error('a handle?');
  const server = http.createServer((req, res) => res.end('standalone\\n'));
  await serverswap.listen(server, '127.0.0.1:0');
  const port = server.address().port;
  const plain = http.createServer().listen(0, '127.0.0.1', async () => {
    http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', async () => {
        plain.close();
        await serverswap.drain(server);
        console.log(JSON.stringify({ active: serverswap.active, body, port }));
      });
    });
  });
})();
`;

test('outside serverswap the same code binds by itself', () => {
  const done = spawnSync(process.execPath, ['-e', SCRIPT], { env: cleanEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(done.status, 0, done.stdout + done.stderr);
  const result = JSON.parse(done.stdout);
  assert.equal(result.active, false);
  assert.equal(result.body, 'standalone\n');
  assert.ok(result.port > 0);
});
