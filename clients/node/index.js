'use strict';
// serverswap client for Node.js: zero-downtime restarts under the serverswap daemon.
// See README.md. Outside serverswap (no SERVERSWAP_ID) readyFor() calls back at once
// without a handle, listen() binds normally and the other calls do nothing.

const { Client, ServerswapError } = require('./lib/client');
const listen = require('./lib/listen');
const { drain: drainServer, graceFromEnv } = require('./lib/drain');
const { parseResource, listenRequest, matchListen } = require('./lib/resources');

const client = new Client(process.env);
listen.install(client);

module.exports = {
  readyFor: (resource, callback) => client.readyFor(resource, callback),
  onTakedown: (resource, handler) => client.onTakedown(resource, handler),
  serverUp: () => client.serverUp(),
  manualUp: () => client.manualUp(),
  fail: (reason) => client.fail(reason),
  tookDown: (resource) => (client.active ? client.tookDown(resource) : undefined),
  // Staggered handover: accepting on `resource` now; older holders go down on it alone.
  serving: (resource) => (client.active ? client.send({ serving: resource }) : undefined),
  drain: (server, options, callback) =>
    client.active ? client.drain(server, options, callback) : drainServer(server, options, callback),
  listen: (server, resource) => client.listen(server, resource),
  address: (resource) => client.address(resource),
  get active() { return client.active; },
  client,
  Client,
  ServerswapError,
  graceFromEnv,
  parseResource,
  listenRequest,
  matchListen,
};
