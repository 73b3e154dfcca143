#!/usr/bin/env node
'use strict';
// A stand-in for `serverswap node-relay` AND the daemon, for client tests without the
// real daemon: answers hello with welcome, readyFor with a socket it binds on 127.0.0.1
// (or an error for a resource named "bad"), and sends takeDown for every resource once
// the server said serverUp when FAKE_TAKEDOWN=1; with FAKE_REFUSE_HELLO=1 it refuses the
// hello and closes, as the daemon does with an unknown server id. Every message it gets is appended to
// $FAKE_LOG, one JSON line each.
const fs = require('fs');
const net = require('net');

const servers = new Map();
function record(msg) {
  if (process.env.FAKE_LOG) fs.appendFileSync(process.env.FAKE_LOG, JSON.stringify(msg) + '\n');
}
process.on('message', (msg) => {
  record(msg);
  const key = Object.keys(msg)[0];
  if (key === 'hello' && process.env.FAKE_REFUSE_HELLO === '1') {
    // As the daemon does with an unknown server id: an error, then the connection closes.
    process.send({ error: `unknown server id ${msg.hello.id}`, request: msg }, () => process.exit(0));
  } else if (key === 'hello') {
    process.send({ welcome: { protocol: 1, id: msg.hello.id, version: 'fake' } });
  } else if (key === 'readyFor') {
    const resource = msg.readyFor;
    if (resource === 'bad') {
      process.send({ error: 'bad resource: bad', request: msg });
      return;
    }
    const send = (server) => {
      const a = server.address();
      process.send({ resourceReady: resource, address: `${a.address}:${a.port}` }, server._handle);
    };
    if (servers.has(resource)) return send(servers.get(resource));
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      servers.set(resource, server);
      send(server);
    });
  } else if (key === 'serverUp' && process.env.FAKE_TAKEDOWN === '1') {
    for (const resource of servers.keys()) process.send({ takeDown: resource });
  }
});
process.on('disconnect', () => process.exit(0));
