'use strict';
// Redirects net.Server#listen() onto the daemon's listening socket, as Node's cluster
// module does for workers: a listen on a port (or unix path) that matches a resource this
// process was handed listens on the handle the daemon sent instead of binding. Every
// server's connections are also tracked, so drain() knows them.

const net = require('net');
const { listenRequest, matchListen } = require('./resources');
const { track } = require('./drain');

// The resource a listen() request names, to look for an inherited socket: a wildcard or
// no host is ":PORT" (any address with that port).
function requestedResource(request) {
  if (!request) return null;
  if (request.path !== undefined) return `unix:${request.path}`;
  const host = request.host;
  if (host === undefined || ['', '0.0.0.0', '::', '[::]'].includes(host)) return `:${request.port}`;
  return host.includes(':') ? `[${host}]:${request.port}` : `${host}:${request.port}`;
}

const originalListen = net.Server.prototype.listen;
let router = null;  // the client that owns the handles (set by install())

function patchedListen(...args) {
  track(this);
  if (router && (router.active || router.hasInherited())) {
    // readyFor gives one handle per resource, however often asked: a second server on it
    // would silently take the first one's connections (Node moves the handle over).
    const other = router.otherListener(args[0], this);
    if (other) {
      const err = new Error(`serverswap: another net.Server already listens on the handle for ` +
        `${router.servers.get(other)}; one server per handle`);
      err.code = 'ERR_SERVERSWAP_HANDLE_IN_USE';
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    let resource = router.resourceOfHandle(args[0]);
    if (resource === null) {
      const request = listenRequest(args);
      resource = matchListen(request, router.handed());
      // Not asked for with readyFor: a socket passed at exec for this address, if any.
      if (resource === null) {
        let entry = null;
        try {
          entry = router.inheritedEntry(requestedResource(request));
        } catch (err) {
          entry = null;  // a name, not an address, is what fails: bind as asked
        }
        if (entry && !entry.used) resource = entry.resource;
      }
      const handle = resource !== null ? router.takeHandle(resource) : null;
      if (handle) {
        const callback = args.find((a) => typeof a === 'function');
        args = callback ? [handle, callback] : [handle];
      } else {
        resource = null;
      }
    }
    if (resource !== null) router.adopt(this, resource);
  }
  return originalListen.apply(this, args);
}

function install(client) {
  router = client;
  if (net.Server.prototype.listen !== patchedListen) net.Server.prototype.listen = patchedListen;
}

function uninstall() {
  router = null;
  net.Server.prototype.listen = originalListen;
}

module.exports = { install, uninstall, originalListen, requestedResource };
