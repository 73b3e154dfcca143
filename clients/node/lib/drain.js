'use strict';
// Draining a net/http server without resetting a keep-alive client:
//
// 1. stop accepting (net.Server#close on our copy of the listening socket; the daemon's
//    copy keeps queueing connections for the newer server). Unlike http.Server#close in
//    Node >= 19 this does NOT close idle keep-alive connections: a client may be sending
//    its next request on one right now, and closing it would reset that request;
// 2. every request that still arrives is answered with "Connection: close" and its
//    connection is closed after that response;
// 3. connections still idle when the grace period ends are closed;
// 4. the callback / promise completes once every connection is closed.
//
// Connections are tracked from the server's listen() (lib/listen.js calls track()), so a
// drain knows every open connection and whether a request is in flight on it.

const net = require('net');

const DEFAULT_GRACE_MS = 10000;
const kState = Symbol('serverswap.connections');

function graceFromEnv(env = process.env) {
  const text = env.SERVERSWAP_DRAIN_GRACE;
  if (!text) return DEFAULT_GRACE_MS;
  const seconds = Number(text);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : DEFAULT_GRACE_MS;
}

// Starts tracking a server's connections and requests; idempotent.
function track(server) {
  if (server[kState]) return server[kState];
  const state = {
    sockets: new Map(),  // socket -> Set of responses not yet finished
    draining: false,
    promise: null,
  };
  server[kState] = state;
  server.on('connection', (socket) => {
    state.sockets.set(socket, new Set());
    socket.once('close', () => state.sockets.delete(socket));
  });
  // Before the application's handler: it may write the head at once.
  server.prependListener('request', (req, res) => {
    const socket = req.socket;
    let pending = state.sockets.get(socket);
    if (!pending) {  // https: the request's socket is the TLS one
      pending = new Set();
      state.sockets.set(socket, pending);
      socket.once('close', () => state.sockets.delete(socket));
    }
    pending.add(res);
    const finished = () => pending.delete(res);
    res.once('finish', finished);
    res.once('close', finished);
    if (state.draining) res.shouldKeepAlive = false;
  });
  return state;
}

function isIdle(pending) {
  return !pending || pending.size === 0;
}

// Drains `server` (see the top of this file). options: {grace: ms (default
// $SERVERSWAP_DRAIN_GRACE seconds, else 10 s), onStopped(): called once no longer accepting}.
// Returns a promise resolved when every connection is closed; `callback` too if given.
function drain(server, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  options = options || {};
  const state = track(server);
  if (!state.promise) state.promise = startDrain(server, state, options);
  if (callback) state.promise.then(() => callback(), callback);
  return state.promise;
}

function startDrain(server, state, options) {
  const grace = options.grace !== undefined ? options.grace : graceFromEnv();
  state.draining = true;
  for (const pending of state.sockets.values()) {
    for (const res of pending) {
      if (!res.headersSent) res.shouldKeepAlive = false;
    }
  }
  return new Promise((resolve) => {
    let timer = null;
    const finish = () => {
      if (timer) clearTimeout(timer);
      resolve();
    };
    net.Server.prototype.close.call(server, (err) => {
      if (!err) return finish();
      // It was not listening: wait for the connections we know of.
      const waitForSockets = () => {
        if (state.sockets.size === 0) return finish();
        const [first] = state.sockets.keys();
        first.once('close', () => setImmediate(waitForSockets));
      };
      waitForSockets();
    });
    if (options.onStopped) options.onStopped();
    timer = setTimeout(() => {
      timer = null;
      for (const [socket, pending] of state.sockets) {
        if (isIdle(pending)) socket.destroy();
      }
      if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
    }, grace);
    timer.unref();
  });
}

function isDraining(server) {
  return Boolean(server[kState] && server[kState].draining);
}

module.exports = { drain, track, isDraining, graceFromEnv, DEFAULT_GRACE_MS };
