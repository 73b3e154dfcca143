'use strict';
// drain() on an in-process http server with keep-alive clients: nothing is reset.
const test = require('node:test');
const assert = require('node:assert');
const http = require('http');
const net = require('net');
const { drain, track } = require('../lib/drain');

function startServer(handler) {
  const server = http.createServer(handler || ((req, res) => res.end('ok\n')));
  track(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function get(port, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, agent, path: '/' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ res, body, reused: req.reusedSocket, socket: req.socket }));
    });
    req.on('error', reject);
  });
}

function closed(socket) {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(false);
    socket.once('close', (hadError) => resolve(hadError));
  });
}

test('a request on a keep-alive connection during the drain gets Connection: close', async () => {
  const server = await startServer();
  const port = server.address().port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await get(port, agent);
  assert.equal(first.res.headers.connection, 'keep-alive');
  let stopped = false;
  const drained = drain(server, { grace: 30000, onStopped: () => { stopped = true; } });
  assert.ok(stopped);
  const second = await get(port, agent);  // the idle connection is still open
  assert.equal(second.reused, true);
  assert.equal(second.body, 'ok\n');
  assert.equal(second.res.headers.connection, 'close');
  assert.equal(await closed(second.socket), false);
  const started = Date.now();
  await drained;
  assert.ok(Date.now() - started < 5000, 'the drain ended with the last connection');
  await assert.rejects(get(port), { code: 'ECONNREFUSED' });
  agent.destroy();
});

test('a response in flight when the drain starts carries Connection: close', async () => {
  let release;
  const server = await startServer((req, res) => { release = () => res.end('late\n'); });
  const agent = new http.Agent({ keepAlive: true });
  const pending = get(server.address().port, agent);
  while (!release) await new Promise((r) => setImmediate(r));
  const drained = drain(server, { grace: 30000 });
  release();
  const reply = await pending;
  assert.equal(reply.body, 'late\n');
  assert.equal(reply.res.headers.connection, 'close');
  await drained;
  agent.destroy();
});

test('connections still idle when the grace ends are closed, then the drain completes', async () => {
  const server = await startServer();
  const agent = new http.Agent({ keepAlive: true });
  const reply = await get(server.address().port, agent);
  const clientClosed = closed(reply.socket);
  const started = Date.now();
  let calledBack = false;
  await drain(server, { grace: 300 }, () => { calledBack = true; });
  assert.ok(Date.now() - started >= 250, 'not before the grace period');
  assert.equal(await clientClosed, false, 'closed cleanly, not reset');
  await new Promise((r) => setImmediate(r));
  assert.ok(calledBack);
  agent.destroy();
});

test('http.Server#close would close the idle connection at once (why drain exists)', async () => {
  const server = await startServer();
  const agent = new http.Agent({ keepAlive: true });
  const reply = await get(server.address().port, agent);
  reply.socket.ref();  // a free keep-alive socket is unref'd by its agent
  const clientClosed = closed(reply.socket);
  server.close();
  await clientClosed;
  agent.destroy();
});

test('drain of a plain net server waits for its connections', async () => {
  const server = net.createServer((socket) => socket.on('data', (d) => socket.end(d)));
  track(server);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect(server.address().port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  while (server._connections === 0) await new Promise((r) => setImmediate(r));
  const drained = drain(server, { grace: 30000 });
  client.write('bye');
  client.resume();
  await drained;
});
