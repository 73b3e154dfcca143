'use strict';
// Pure unit tests: resource names and matching listen() calls against handed resources.
const test = require('node:test');
const assert = require('node:assert');
const { parseResource, listenRequest, matchListen, portOfAddress } = require('../lib/resources');

test('parseResource', () => {
  assert.deepEqual(parseResource(':8080'), { kind: 'tcp', host: '', port: 8080 });
  assert.deepEqual(parseResource('127.0.0.1:0'), { kind: 'tcp', host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseResource('[::1]:80'), { kind: 'tcp', host: '::1', port: 80 });
  assert.deepEqual(parseResource('unix:/tmp/a.sock'), { kind: 'unix', path: '/tmp/a.sock' });
  for (const bad of ['8080', ':99999', 'host', 'unix:', '', null, ':-1', '::1:80']) {
    assert.equal(parseResource(bad), null, String(bad));
  }
  assert.equal(portOfAddress('[::]:8080'), 8080);
  assert.equal(portOfAddress('127.0.0.1:43211'), 43211);
});

test('listenRequest reads the forms net.Server#listen takes', () => {
  const cb = () => {};
  assert.deepEqual(listenRequest([8080]), { port: 8080, host: undefined });
  assert.deepEqual(listenRequest(['8080', cb]), { port: 8080, host: undefined });
  assert.deepEqual(listenRequest([8080, '127.0.0.1', 511, cb]), { port: 8080, host: '127.0.0.1' });
  assert.deepEqual(listenRequest([{ port: 8080, host: '::1' }]), { port: 8080, host: '::1' });
  assert.deepEqual(listenRequest([{ port: '0' }]), { port: 0, host: undefined });
  assert.deepEqual(listenRequest(['/tmp/a.sock']), { path: '/tmp/a.sock' });
  assert.deepEqual(listenRequest([{ path: '/tmp/a.sock' }]), { path: '/tmp/a.sock' });
  assert.equal(listenRequest([{ fd: 3 }]), null);
  assert.equal(listenRequest([{ _handle: {} }]), null);
  assert.equal(listenRequest([]), null);
  assert.equal(listenRequest([cb]), null);
});

test('matchListen: ports, hosts, port-0 resources, unix paths', () => {
  const handed = [
    { resource: ':8080', address: '[::]:8080' },
    { resource: '127.0.0.1:9090', address: '127.0.0.1:9090' },
    { resource: '[::1]:9090', address: '[::1]:9090' },
    { resource: '127.0.0.1:0', address: '127.0.0.1:43211' },
    { resource: 'unix:/tmp/a.sock', address: 'unix:/tmp/a.sock' },
  ];
  const m = (...args) => matchListen(listenRequest(args), handed);
  assert.equal(m(8080), ':8080');
  assert.equal(m('8080'), ':8080');
  assert.equal(m({ port: 8080, host: '0.0.0.0' }), ':8080');
  assert.equal(m(8080, '127.0.0.1'), ':8080');
  assert.equal(m(9090, '127.0.0.1'), '127.0.0.1:9090');
  assert.equal(m({ port: 9090, host: '::1' }), '[::1]:9090');
  assert.equal(m(43211), '127.0.0.1:0');
  assert.equal(m(0), null, 'listen(0) binds a new port of its own');
  assert.equal(m(8081), null);
  assert.equal(m('/tmp/a.sock'), 'unix:/tmp/a.sock');
  assert.equal(m('/tmp/b.sock'), null);
  assert.equal(matchListen(listenRequest([8080]), []), null);
});
