'use strict';
// Redirects net.Server#listen() onto the daemon's listening socket, as Node's cluster
// module does for workers: a listen on a port (or unix path) that matches a resource this
// process was handed listens on the handle the daemon sent instead of binding. Every
// server's connections are also tracked, so drain() knows them.

const net = require('net');
const { listenRequest, matchListen } = require('./resources');
const { track } = require('./drain');

const originalListen = net.Server.prototype.listen;
let router = null;  // the client that owns the handles (set by install())

function patchedListen(...args) {
  track(this);
  if (router && router.active) {
    let resource = router.resourceOfHandle(args[0]);
    if (resource === null) {
      resource = matchListen(listenRequest(args), router.handed());
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

module.exports = { install, uninstall, originalListen };
