'use strict';
// Outside serverswap (no SERVERSWAP_ID): readyFor calls back at once without a
// handle, listen() binds normally, the other calls do nothing, no relay is started. With
// SERVERSWAP_SOCKET alone (an operator's shell) the same, silently; with SERVERSWAP_ID and
// no daemon the same after one line on stderr.
const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('child_process');
const path = require('path');
const fs = require('fs');
const net = require('net');
const os = require('os');
const { cleanEnv, run, SERVERSWAP_BIN } = require('./support');

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

// A server as an application writes it for serverswap: asks for its resource, serves HTTP on
// it, answers one request of its own, and prints what it saw.
const APP = `
const http = require('http');
const serverswap = require(${JSON.stringify(path.dirname(__dirname))});
const server = http.createServer((req, res) => res.end('by hand\\n'));
// Both wait for the daemon's answer, when there is a relay to ask.
const listening = serverswap.listen(server, '127.0.0.1:0');
serverswap.readyFor('127.0.0.1:0', (handle) => {
  const viaCallback = handle === undefined;
  listening.then(() => {
    const port = server.address().port;
    http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        server.close();
        console.log(JSON.stringify({ active: serverswap.active, viaCallback, body, port }));
      });
    });
  });
});
`;

async function runApp(env) {
  const done = await run([process.execPath, '-e', APP], { env: cleanEnv(env), timeoutMs: 20000 });
  assert.equal(done.code, 0, done.output);
  const result = JSON.parse(done.stdout);
  assert.equal(result.active, false);
  assert.equal(result.viaCallback, true);
  assert.equal(result.body, 'by hand\n');
  assert.ok(result.port > 0);
  return done.stderr.split('\n').filter(Boolean);
}

function scratch(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serverswap-node-standalone-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const haveBinary = fs.existsSync(SERVERSWAP_BIN);
const noBinary = haveBinary ? false : `no serverswap binary at ${SERVERSWAP_BIN} (set SERVERSWAP_BIN)`;

test('SERVERSWAP_SOCKET alone (no SERVERSWAP_ID) is standalone and silent', async (t) => {
  const dir = scratch(t);
  const said = await runApp({ SERVERSWAP_SOCKET: path.join(dir, 'none.sock'),
    SERVERSWAP_RELAY: SERVERSWAP_BIN });
  assert.deepEqual(said, []);
});

test('SERVERSWAP_ID with no daemon at the socket: standalone, one warning', { skip: noBinary }, async (t) => {
  const dir = scratch(t);
  const socket = path.join(dir, 'none.sock');
  const said = await runApp({ SERVERSWAP_SOCKET: socket, SERVERSWAP_ID: 'test-1',
    SERVERSWAP_RELAY: SERVERSWAP_BIN });
  assert.equal(said.length, 1, said.join('\n'));
  assert.ok(said[0].includes(`SERVERSWAP_ID is set but no daemon answers on ${socket} ` +
    '(No such file or directory); running standalone'), said[0]);
});

test('SERVERSWAP_ID with a socket file nobody listens on: standalone, one warning', { skip: noBinary }, async (t) => {
  const dir = scratch(t);
  const socket = path.join(dir, 'dead.sock');
  // What a daemon killed with SIGKILL leaves: a socket file that refuses connections.
  // Node unlinks a Unix socket it stops listening on: a second link keeps the file.
  const dead = net.createServer();
  await new Promise((resolve) => dead.listen(socket, resolve));
  fs.linkSync(socket, socket + '.kept');
  await new Promise((resolve) => dead.close(resolve));
  fs.renameSync(socket + '.kept', socket);
  const said = await runApp({ SERVERSWAP_SOCKET: socket, SERVERSWAP_ID: 'test-1',
    SERVERSWAP_RELAY: SERVERSWAP_BIN });
  assert.equal(said.length, 1, said.join('\n'));
  assert.ok(said[0].includes(`no daemon answers on ${socket} (Connection refused); running standalone`), said[0]);
});

test('SERVERSWAP_ID without SERVERSWAP_SOCKET or SERVERSWAP_RELAY: standalone, one warning', async () => {
  let said = await runApp({ SERVERSWAP_ID: 'test-1', SERVERSWAP_RELAY: '/nonexistent/relay' });
  assert.equal(said.length, 1, said.join('\n'));
  assert.ok(said[0].includes('SERVERSWAP_ID is set but SERVERSWAP_SOCKET is not; running standalone'), said[0]);
  said = await runApp({ SERVERSWAP_ID: 'test-1', SERVERSWAP_SOCKET: '/nonexistent/control.sock' });
  assert.equal(said.length, 1, said.join('\n'));
  assert.ok(said[0].includes('SERVERSWAP_ID is set but SERVERSWAP_RELAY is not'), said[0]);
});

test('SERVERSWAP_ID with a relay that cannot start: standalone, one warning', async () => {
  const said = await runApp({ SERVERSWAP_ID: 'test-1', SERVERSWAP_SOCKET: '/nonexistent/control.sock',
    SERVERSWAP_RELAY: '/nonexistent/relay' });
  assert.equal(said.length, 1, said.join('\n'));
  assert.ok(said[0].includes('SERVERSWAP_ID is set but the node relay /nonexistent/relay cannot start (ENOENT)'), said[0]);
});
