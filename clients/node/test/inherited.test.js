'use strict';
// Inherited listening sockets (LISTEN_FDS, SERVER_STARTER_PORT, EINHORN_FD_n): the parsers,
// /proc-based matching against real sockets, and unmodified listen() calls in child
// processes that get the socket at fd 3 as systemd, Server::Starter or serverswap --listen
// pass it, standalone and under the fake relay (no readyFor sent).
const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const inherited = require('../lib/inherited');
const { requestedResource } = require('../lib/listen');
const { cleanEnv } = require('./support');

const PACKAGE = path.dirname(__dirname);
const RELAY = path.join(__dirname, 'fake_relay.js');

function listening(...args) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(...args, () => resolve(server));
  });
}

test('parsers: systemd for its own pid, Server::Starter, einhorn, first present wins', () => {
  const sd = { LISTEN_FDS: '2', LISTEN_PID: '42', LISTEN_FDNAMES: 'web:admin' };
  assert.deepEqual(inherited.parseSystemd(sd, 42),
    { convention: 'LISTEN_FDS', sockets: [{ fd: 3, name: 'web' }, { fd: 4, name: 'admin' }] });
  assert.deepEqual(inherited.parseSystemd(sd, 41).sockets, []);
  assert.throws(() => inherited.parseSystemd({ ...sd, LISTEN_FDNAMES: 'web' }, 42),
    /names 1 descriptors but LISTEN_FDS=2/);
  assert.deepEqual(inherited.parseServerStarter('8080=3;127.0.0.1:8081=4;/run/a=b.sock=6;').sockets.map((s) => s.fd),
    [3, 4, 6]);
  for (const bad of ['8080', '=3', '8080=x', '']) assert.throws(() => inherited.parseServerStarter(bad), undefined, bad);
  assert.deepEqual(inherited.parseEinhorn({ EINHORN_FD_COUNT: '2', EINHORN_FD_0: '7', EINHORN_FD_1: '9' }).sockets
    .map((s) => s.fd), [7, 9]);
  assert.throws(() => inherited.parseEinhorn({ EINHORN_FD_COUNT: '1' }), /EINHORN_FD_0=: not a number/);
  const all = { ...sd, LISTEN_FDNAMES: undefined, SERVER_STARTER_PORT: '8080=5', EINHORN_FD_COUNT: '1', EINHORN_FD_0: '6' };
  delete all.LISTEN_FDNAMES;
  assert.deepEqual(inherited.readInherited(all, 42).sockets.map((s) => s.fd), [3, 4]);
  assert.deepEqual(inherited.readInherited(all, 43).sockets.map((s) => s.fd), [5]);  // a forked worker
  const logged = [];
  assert.equal(inherited.readInherited({ ...all, SERVER_STARTER_PORT: 'junk' }, 43, (t) => logged.push(t)).convention,
    'EINHORN_FD_COUNT');
  assert.equal(logged.length, 1);
  assert.equal(requestedResource({ port: 80 }), ':80');
  assert.equal(requestedResource({ port: 80, host: '::1' }), '[::1]:80');
  assert.equal(requestedResource({ path: '/a.sock' }), 'unix:/a.sock');
});

test('matching reads each socket\'s own address and state from /proc', async (t) => {
  const v4 = await listening(0, '127.0.0.1');
  t.after(() => v4.close());
  const fd = v4._handle.fd;
  const port = v4.address().port;
  assert.deepEqual(inherited.listeningAddress(fd), { kind: 'tcp', family: 4, host: '127.0.0.1', port });
  assert.ok(inherited.listensOn(fd, `127.0.0.1:${port}`));
  assert.ok(inherited.listensOn(fd, `:${port}`));
  assert.ok(!inherited.listensOn(fd, `127.0.0.2:${port}`));
  assert.ok(!inherited.listensOn(fd, `[::1]:${port}`));
  assert.ok(!inherited.listensOn(fd, '127.0.0.1:0'));
  const any = await listening(0);  // [::], dual-stack
  t.after(() => any.close());
  assert.equal(inherited.spell(inherited.listeningAddress(any._handle.fd)), `[::]:${any.address().port}`);
  assert.ok(inherited.listensOn(any._handle.fd, `:${any.address().port}`));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serverswap-node-inherited-'));
  const local = await listening(path.join(dir, 'a.sock'));
  t.after(() => { local.close(); fs.rmSync(dir, { recursive: true, force: true }); });
  assert.ok(inherited.listensOn(local._handle.fd, `unix:${dir}/a.sock`));
  assert.ok(!inherited.listensOn(local._handle.fd, `unix:${dir}/b.sock`));
  assert.ok(!inherited.listensOn(0, ':1'));  // stdin: no socket
  assert.throws(() => inherited.find([{ fd: 0, name: 'web' }], 'web'), /inherited fd 0 \(LISTEN_FDNAMES web\) is not a listening/);
});

// Child: takes LISTEN_PID (or nothing) for itself, then an unmodified
// http.createServer().listen(PORT, '127.0.0.1'), GETs itself and reports.
const CHILD = `
if (process.env.TEST_SYSTEMD) Object.assign(process.env, { LISTEN_FDS: '1', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'web' });
const http = require('http');
const serverswap = require(${JSON.stringify(PACKAGE)});
const port = Number(process.env.TEST_PORT);
(async () => {
  const named = process.env.TEST_SYSTEMD ? await serverswap.readyFor('web').catch((e) => e.message) : null;
  const server = http.createServer((req, res) => res.end('inherited ' + process.pid));
  server.listen(port, '127.0.0.1', () => {
    http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', async () => {
        // Outlives the client's not-listening timers: same delay, started earlier, fire first.
        await new Promise((resolve) => setTimeout(resolve, Number(process.env.SERVERSWAP_TEST_LISTEN_WARNING_MS || 0)));
        const out = { body, named, address: serverswap.address('127.0.0.1:' + port) };
        await serverswap.fail('test done');
        server.close();
        console.log(JSON.stringify(out));
      });
    });
  });
})();
`;

// The child gets `socket` at fd 3, which this process then closes: were it still
// listening here too, this process would accept some of the child's own connections.
function runChild(socket, env, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD], { env, stdio: ['ignore', 'pipe', 'pipe', socket._handle.fd] });
    socket.close();
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timeout:\n${stdout}${stderr}`)); }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, pid: child.pid });
    });
  });
}

function readLog(file) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  return text.split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l));
}

// The fake relay's log once `done(messages)` holds; waits on file events, at most 10 s.
function logUntil(file, done, dir) {
  return new Promise((resolve, reject) => {
    const watcher = fs.watch(dir, () => check());
    const timer = setTimeout(() => { watcher.close(); reject(new Error(`log: ${JSON.stringify(readLog(file))}`)); }, 10000);
    function check() {
      const messages = readLog(file);
      if (!done(messages)) return;
      clearTimeout(timer);
      watcher.close();
      resolve(messages);
    }
    check();
  });
}

test('systemd: an unmodified listen() uses fd 3 standalone', async (t) => {
  const socket = await listening(0, '127.0.0.1');  // binding it again in the child would fail
  const port = socket.address().port;
  const r = await runChild(socket, cleanEnv({ TEST_SYSTEMD: '1', TEST_PORT: String(port) }));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.body, `inherited ${r.pid}`);
  assert.deepEqual(out.named, { fd: 3 });  // readyFor('web') by LISTEN_FDNAMES
  assert.deepEqual(out.address, { address: '127.0.0.1', family: 'IPv4', port });
});

test('systemd: readyFor by name, then listen() on the port: the named handle is not warned about', async (t) => {
  const socket = await listening(0, '127.0.0.1');
  const port = socket.address().port;
  const r = await runChild(socket, cleanEnv({ TEST_SYSTEMD: '1', TEST_PORT: String(port), SERVERSWAP_TEST_LISTEN_WARNING_MS: '20' }));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(JSON.parse(r.stdout).body, `inherited ${r.pid}`);
  assert.doesNotMatch(r.stderr, /no server listens on the socket handed for/);
});

test('Server::Starter under the fake relay: no readyFor sent, serverUp once listening', async (t) => {
  const socket = await listening(0, '127.0.0.1');
  const port = socket.address().port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serverswap-node-inherited-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logFile = path.join(dir, 'log');
  const r = await runChild(socket, cleanEnv({
    TEST_PORT: String(port), SERVER_STARTER_PORT: `127.0.0.1:${port}=3`, SERVERSWAP_SOCKET: path.join(dir, 'none.sock'),
    SERVERSWAP_ID: 'test-1', SERVERSWAP_RELAY: RELAY, FAKE_LOG: logFile,
  }));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.body, `inherited ${r.pid}`);
  // The relay is the child's own child: it may still be writing what the child sent last.
  const messages = await logUntil(logFile, (m) => m.some((x) => x.fail), dir);
  const keys = messages.map((m) => Object.keys(m)[0]);
  assert.ok(!messages.some((m) => m.readyFor === `:${port}` || m.readyFor === `127.0.0.1:${port}`), keys.join());
  assert.deepEqual(messages.filter((m) => m.onTakedown), [{ onTakedown: `127.0.0.1:${port}` }]);
  assert.ok(keys.indexOf('serverUp') > keys.indexOf('onTakedown'), keys.join());
});
