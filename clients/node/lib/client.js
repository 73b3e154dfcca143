'use strict';
// The serverswap client: talks to the daemon through a relay child process (Node cannot
// recvmsg() on a net.Socket, but its IPC channel carries listening sockets). The relay is
// `$SERVERSWAP_RELAY node-relay`: every object sent on the channel is one protocol line
// to the daemon, every daemon line arrives as a message, resourceReady with its handle.
// The relay and its channel are unref'd except while a readyFor is pending, so they never
// keep the application alive.
//
// A listening socket inherited at exec (serverswap --listen, systemd, Server::Starter,
// einhorn: lib/inherited.js) that matches a resource is used first, with no round-trip and
// no relay; standalone too.
//
// Run by serverswap means SERVERSWAP_ID is set (only the daemon sets it, for its servers);
// SERVERSWAP_SOCKET alone is an operator's choice of daemon for the CLI and changes nothing.
// With SERVERSWAP_ID but no daemon when the server starts (SERVERSWAP_SOCKET or
// SERVERSWAP_RELAY unset, the relay cannot be started, or the relay says {noDaemon} because
// its connect failed with ENOENT or ECONNREFUSED) the client runs standalone after one line
// on stderr; readyFor calls waiting for the daemon then get no handle, as standalone ones
// do. A daemon lost after the welcome is the relay's to reconnect to (docs/protocol.md §11).
//
// One handle per resource: a readyFor of a resource this process holds a handle for, or
// has a readyFor in flight for, gets that same handle without asking the daemon again (a
// second answer would be a second descriptor of the same socket, and the daemon would see
// the resource asked for twice). A handle nothing listens on LISTEN_WARNING_MS after it
// arrived is reported once on stderr: a deploy waits for the automatic serverUp until then.

const childProcess = require('child_process');
const EventEmitter = require('events');
const { parseResource } = require('./resources');
const { readInherited, find: findInherited } = require('./inherited');
const { drain: drainServer, isDraining } = require('./drain');

class ServerswapError extends Error {
  constructor(text, request) {
    super(text);
    this.name = 'ServerswapError';
    this.request = request;
  }
}

function log(text) {
  process.stderr.write(`serverswap[${process.pid}]: ${text}\n`);
}

const LISTEN_WARNING_MS = 5000;

// How long a handed socket may go without a listening server before the warning.
// SERVERSWAP_TEST_LISTEN_WARNING_MS (milliseconds) is for the client's own tests only.
function listenWarningMs(env) {
  const text = env.SERVERSWAP_TEST_LISTEN_WARNING_MS;
  const ms = Number(text);
  return text && Number.isFinite(ms) && ms >= 0 ? ms : LISTEN_WARNING_MS;
}

// Whether some net.Server listens on a libuv handle, also one that did not go through our
// listen patch: Node sets onconnection on the handle it listens on (null before).
function handleListens(handle) {
  return Boolean(handle) && typeof handle.onconnection === 'function';
}

class Client extends EventEmitter {
  constructor(env = process.env) {
    super();
    this.env = env;
    this.active = Boolean(env.SERVERSWAP_ID);
    this.relay = null;
    this.closed = null;        // why the connection to the daemon ended
    this.welcome = null;
    this.pending = new Map();  // resource -> {promise, resolve, reject}: its readyFor in flight
    // {resource, address, handle, used, server, listening, closed, warning[, inherited]}
    this.entries = [];
    this.subscribed = new Set();
    this.handlers = new Map(); // resource -> the application's onTakedown handler
    this.takenDown = new Set();
    this.servers = new Map();  // net.Server -> resource
    this.autoUp = true;
    this.upRequested = false;
    this.upSent = false;
    this.broken = false;       // fail() was sent or a readyFor callback threw
    this.inCallback = 0;
    this.drains = new Set();   // default drains still running
    this.inherited = null;     // {convention, sockets}, read from env on first use
    this.inheritedHandles = new Map();  // fd -> the one {fd} handle given out for it
    this.listenWarningMs = listenWarningMs(env);
    this.warnedListen = new Set();  // resources the "nothing listens" warning was given for
    if (this.active && !env.SERVERSWAP_SOCKET) this.runStandalone('SERVERSWAP_SOCKET is not');
    else if (this.active && !env.SERVERSWAP_RELAY) {
      this.runStandalone('SERVERSWAP_RELAY is not (a daemon without the node relay?)');
    }
  }

  // SERVERSWAP_ID is set but no daemon answers as the server starts: serve on our own rather
  // than not at all. Only before the welcome; `why` completes "SERVERSWAP_ID is set but".
  runStandalone(why) {
    if (!this.active || this.welcome) return;
    this.active = false;
    log(`SERVERSWAP_ID is set but ${why}; running standalone`);
    const requests = [...this.pending.values()];
    this.pending.clear();
    this.updateRef();
    // What readyFor gives standalone: no handle (listen() then binds the resource itself).
    for (const r of requests) r.resolve({ handle: undefined, address: undefined });
  }

  // ---- inherited sockets ------------------------------------------------------------

  hasInherited() {
    if (this.inherited === null) this.inherited = readInherited(this.env, process.pid, log);
    return this.inherited.sockets.length > 0;
  }

  // The entry of the inherited socket for `resource`, or null; throws ServerswapError when
  // a LISTEN_FDNAMES name matches a descriptor that is not listening. Node cannot dup() a
  // descriptor and a server listening on {fd} owns it, so each fd has one handle object:
  // asking again returns it, and one net.Server can listen on it.
  inheritedEntry(resource) {
    if (!this.hasInherited()) return null;
    const existing = this.entries.find((e) => e.inherited && e.resource === resource);
    if (existing) return existing;
    let found;
    try {
      found = findInherited(this.inherited.sockets, resource);
    } catch (err) {
      throw new ServerswapError(`serverswap: readyFor ${resource}: ${err.message}`);
    }
    if (!found) return null;
    if (!this.inheritedHandles.has(found.fd)) this.inheritedHandles.set(found.fd, { fd: found.fd });
    const handle = this.inheritedHandles.get(found.fd);
    const entry = this.addEntry({ resource, address: found.address, handle, inherited: true });
    if (this.active) this.subscribe(resource);  // takeDown instead of a signal, as for readyFor
    return entry;
  }

  // ---- the connection -------------------------------------------------------------

  start() {
    if (this.relay || this.closed || !this.active) return;
    const relayPath = this.env.SERVERSWAP_RELAY;
    // Its own process group: a signal the daemon sends to this server's group (a failed
    // start) must not kill the relay before it forwarded the daemon's last lines (an
    // error reply). It exits when either side closes, so it never outlives this process.
    const relay = childProcess.spawn(relayPath, ['node-relay'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: this.env,
      detached: true,
    });
    this.relay = relay;
    relay.on('message', (msg, handle) => this.onMessage(msg, handle));
    relay.on('error', (err) => {
      // Not started at all (a spawn error comes before any message): no daemon to reach.
      if (!this.welcome && this.active && /^spawn/.test(err.syscall || '')) {
        this.runStandalone(`the node relay ${relayPath} cannot start (${err.code || err.message})`);
      }
      this.connectionLost(`relay ${relayPath}: ${err.message}`);
    });
    relay.on('disconnect', () => this.connectionLost('the connection to the daemon closed'));
    relay.unref();
    relay.channel.unref();
    this.send({ hello: { id: this.env.SERVERSWAP_ID, pid: process.pid, protocol: 1, upMessage: true } });
  }

  send(message) {
    this.start();
    if (this.closed || !this.relay || !this.relay.connected) return Promise.resolve(false);
    return new Promise((resolve) => {
      try {
        this.relay.send(message, (err) => resolve(!err));
      } catch (err) {
        resolve(false);
      }
    });
  }

  // The channel keeps the process alive only while a readyFor waits for its answer.
  updateRef() {
    if (!this.relay || !this.relay.channel) return;
    if (this.pending.size > 0) this.relay.channel.ref();
    else this.relay.channel.unref();
  }

  connectionLost(why) {
    if (this.closed) return;
    this.closed = why;
    const error = new ServerswapError(`serverswap: ${why}`);
    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const r of requests) r.reject(error);
  }

  onMessage(msg, handle) {
    if (!msg || typeof msg !== 'object') return;
    if ('welcome' in msg) {
      this.welcome = msg.welcome;
    } else if ('noDaemon' in msg) {
      // The relay's own message (src/cli/node_relay.cc): its first connect found no daemon.
      const said = msg.noDaemon || {};
      this.runStandalone(`no daemon answers on ${said.socket} (${said.error})`);
    } else if ('resourceReady' in msg) {
      this.onResourceReady(msg.resourceReady, msg.address, handle);
    } else if ('takeDown' in msg) {
      this.onTakeDown(msg.takeDown);
    } else if ('error' in msg) {
      this.onError(msg.error, msg.request);
    }
  }

  onResourceReady(resource, address, handle) {
    const request = this.pending.get(resource);
    this.pending.delete(resource);
    this.updateRef();
    if (!request) {
      if (handle) handle.close();
      return;
    }
    if (!handle) {
      request.reject(new ServerswapError(`serverswap: resourceReady ${resource} came without a socket`));
      return;
    }
    request.resolve(this.addEntry({ resource, address, handle }));
  }

  // A handle this process now holds; the warning if nothing listens on it in time.
  addEntry(fields) {
    const entry = { used: false, server: null, listening: false, closed: false, warning: null, ...fields };
    this.entries.push(entry);
    if (!this.warnedListen.has(entry.resource)) {
      entry.warning = setTimeout(() => this.warnNotListening(entry), this.listenWarningMs);
      entry.warning.unref();  // a warning never keeps the process alive
    }
    return entry;
  }

  warnNotListening(entry) {
    entry.warning = null;
    const resource = entry.resource;
    if (entry.listening || entry.closed || this.warnedListen.has(resource)) return;
    if (handleListens(entry.handle)) return;  // listened on around our listen patch
    this.warnedListen.add(resource);
    const waits = this.active && this.autoUp && !this.upRequested ? ' (the automatic serverUp waits for it)' : '';
    log(`no server listens on the socket handed for ${resource} ${this.listenWarningMs / 1000} s after it ` +
      `arrived${waits}: pass the handle to server.listen(handle), or use ` +
      `serverswap.listen(server, ${JSON.stringify(resource)})`);
  }

  // The entry is listened on, closed or taken down: no warning for it.
  settle(entry) {
    if (entry.warning) clearTimeout(entry.warning);
    entry.warning = null;
  }

  onError(text, request) {
    // An error answering the hello (an unknown server id): the daemon closes the connection
    // next, and that is the reason every request fails with.
    if (request && typeof request === 'object' && 'hello' in request && !this.welcome) {
      log(`the daemon refused this server: ${text}`);
      this.connectionLost(`the daemon refused this server: ${text}`);
      return;
    }
    const resource = request && request.readyFor;
    const asked = resource !== undefined && this.pending.get(resource);
    if (asked) {
      this.pending.delete(resource);
      this.updateRef();
      asked.reject(new ServerswapError(String(text), request));  // every caller gets this one
      return;
    }
    log(`daemon error: ${text}${request ? ' (request ' + JSON.stringify(request) + ')' : ''}`);
  }

  // ---- readyFor -------------------------------------------------------------------

  // A promise of the entry for `resource`: the one held (not closed), else the one readyFor
  // in flight, else a new readyFor. Concurrent callers share its answer, handle or error.
  request(resource) {
    const held = this.entries.find((e) => e.resource === resource && !e.closed);
    if (held) return Promise.resolve(held);
    if (this.closed) return Promise.reject(new ServerswapError(`serverswap: ${this.closed}`));
    const inFlight = this.pending.get(resource);
    if (inFlight) return inFlight.promise;
    const request = {};
    request.promise = new Promise((resolve, reject) => {
      request.resolve = resolve;
      request.reject = reject;
    });
    this.pending.set(resource, request);
    this.subscribe(resource);  // takeDown instead of a signal: drain by default
    this.send({ readyFor: resource });
    this.updateRef();
    return request.promise;
  }

  // readyFor(resource, cb): cb(handle, address) once the daemon sent the socket.
  // readyFor(resource): a promise of the handle. Outside serverswap: no handle, at once.
  // Asked again (or while the first is in flight): the same handle object, no new request.
  readyFor(resource, callback) {
    let entry = null;
    try {
      entry = this.inheritedEntry(resource);
    } catch (err) {
      if (typeof callback !== 'function') return Promise.reject(err);
      process.nextTick(() => { throw err; });
      return undefined;
    }
    if (entry && typeof callback === 'function') return this.runCallback(callback, entry.handle, entry.address);
    if (entry) return Promise.resolve(entry.handle);
    if (typeof callback === 'function') {
      if (!this.active) return this.runCallback(callback, undefined, undefined);
      this.request(resource).then(
        (entry) => this.runCallback(callback, entry.handle, entry.address),
        (err) => process.nextTick(() => { throw err; }));
      return undefined;
    }
    if (!this.active) return Promise.resolve(undefined);
    return this.request(resource).then((entry) => entry.handle);
  }

  // A throw in the callback must not let this server become up.
  runCallback(callback, handle, address) {
    this.inCallback++;
    try {
      callback(handle, address);
    } catch (err) {
      if (this.active && !this.upSent) {
        this.broken = true;
        this.send({ fail: `readyFor callback threw: ${err && err.message}` });
      }
      process.nextTick(() => { throw err; });
      return;
    } finally {
      this.inCallback--;
    }
    this.maybeSendUp();
    this.scheduleAutoUp();
  }

  // ---- serverUp -------------------------------------------------------------------

  serverUp() {
    if (!this.active) return;
    this.upRequested = true;
    this.maybeSendUp();
  }

  manualUp() {
    this.autoUp = false;
  }

  maybeSendUp() {
    if (!this.upRequested || this.upSent || this.broken || this.inCallback > 0) return;
    this.upSent = true;
    this.send({ serverUp: true });
  }

  // Auto serverUp: every resource handed is listening and no readyFor is pending.
  scheduleAutoUp() {
    if (!this.autoUp || this.upRequested || !this.active) return;
    setImmediate(() => {
      if (!this.autoUp || this.upRequested || this.broken || this.pending.size > 0) return;
      if (this.entries.length === 0 || !this.entries.every((e) => e.listening)) return;
      this.upRequested = true;
      this.maybeSendUp();
    });
  }

  fail(reason) {
    if (!this.active) return Promise.resolve(false);
    this.broken = true;
    return this.send({ fail: String(reason === undefined ? 'fail() called' : reason) });
  }

  // ---- handles and servers (used by lib/listen.js) ---------------------------------

  handed() {
    return this.entries.filter((e) => !e.used);
  }

  // The live entry a listen() argument is the handle of: the object readyFor gave, or an
  // {fd} naming the same inherited descriptor.
  entryOfHandle(handle) {
    if (!handle || typeof handle !== 'object') return null;
    const same = (e) => e.handle === handle ||
      (e.inherited && Number.isInteger(handle.fd) && e.handle.fd === handle.fd);
    return this.entries.find((e) => same(e) && !e.closed) || this.entries.find(same) || null;
  }

  resourceOfHandle(handle) {
    const entry = this.entryOfHandle(handle);
    if (!entry) return null;
    entry.used = true;
    return entry.resource;
  }

  // The net.Server other than `server` that listens on `handle` (ours, not closed), or null:
  // a second server on one handle would take its connections from the first, silently.
  otherListener(handle, server) {
    const entry = this.entryOfHandle(handle);
    return entry && !entry.closed && entry.server && entry.server !== server ? entry.server : null;
  }

  takeHandle(resource) {
    const entry = this.entries.find((e) => e.resource === resource && !e.used);
    if (!entry) return null;
    entry.used = true;
    return entry.handle;
  }

  adopt(server, resource) {
    this.servers.set(server, resource);
    const entry = this.entries.find((e) => e.resource === resource && e.used && !e.server && !e.closed);
    if (entry) entry.server = server;
    // An inherited descriptor can be the entry of two names (readyFor('web'), a listen on
    // its port): what happens to the handle happens to both.
    const sharing = () => (entry ? this.entries.filter((e) => e.handle === entry.handle) : []);
    server.once('listening', () => {
      for (const e of sharing()) {
        e.listening = true;
        this.settle(e);
      }
      this.scheduleAutoUp();
    });
    // Closing the server closes its handle: a later readyFor asks the daemon again.
    if (entry) {
      server.once('close', () => {
        for (const e of sharing()) {
          e.closed = true;
          this.settle(e);
        }
      });
    }
    // server.close() after a takeDown drains instead of closing idle keep-alive
    // connections (http.Server#close in Node >= 19 does, and resets clients).
    if (typeof server.closeIdleConnections === 'function' && !server.hasOwnProperty('close')) {
      const client = this;
      const originalClose = server.close;
      server.close = function close(callback) {
        if (client.takenDown.has(resource)) {
          client.drain(this, {}, callback ? () => callback() : undefined);
          return this;
        }
        return originalClose.apply(this, arguments);
      };
    }
  }

  address(resource) {
    const entry = this.entries.find((e) => e.resource === resource);
    if (!entry || !entry.address) return null;
    if (entry.address.startsWith('unix:')) return entry.address.slice(5);
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(entry.address);
    if (!m) return null;
    return { address: m[1], family: m[1].includes(':') ? 'IPv6' : 'IPv4', port: Number(m[2]) };
  }

  // ---- takedown -------------------------------------------------------------------

  subscribe(resource) {
    if (this.subscribed.has(resource)) return;
    this.subscribed.add(resource);
    this.send({ onTakedown: resource });
  }

  onTakedown(resource, handler) {
    if (!this.active) return;
    if (typeof handler === 'function') this.handlers.set(resource, handler);
    this.subscribe(resource);
  }

  tookDown(resource) {
    if (this.tookDownSent && this.tookDownSent.has(resource)) return;
    this.tookDownSent = this.tookDownSent || new Set();
    this.tookDownSent.add(resource);
    this.send({ tookDown: resource });
  }

  onTakeDown(resource) {
    this.takenDown.add(resource);
    for (const entry of this.entries) if (entry.resource === resource) this.settle(entry);
    const handler = this.handlers.get(resource);
    if (handler) {
      let called = false;
      const done = () => {
        if (called) return;
        called = true;
        this.tookDown(resource);
      };
      if (handler.length >= 1) {
        handler(done, resource);
        return;
      }
      const result = handler(undefined, resource);
      if (result && typeof result.then === 'function') result.then(done, (err) => process.nextTick(() => { throw err; }));
      else done();
      return;
    }
    this.defaultTakedown(resource);
  }

  // No handler: drain the servers listening on the resource; exit 0 once every resource
  // was taken down and drained (when the application registered no handler at all).
  defaultTakedown(resource) {
    const servers = [...this.servers].filter(([, r]) => r === resource).map(([s]) => s);
    for (const entry of this.entries) {
      if (entry.resource === resource && !entry.used) {
        entry.used = true;
        if (!entry.inherited) {
          entry.handle.close();  // an inherited {fd} is no handle yet
          entry.closed = true;
        }
      }
    }
    if (servers.length === 0) {
      this.tookDown(resource);
      this.maybeExit();
      return;
    }
    for (const server of servers) {
      if (isDraining(server)) continue;
      const running = this.drain(server, {});
      this.drains.add(running);
      running.then(() => {
        this.drains.delete(running);
        this.maybeExit();
      });
    }
  }

  maybeExit() {
    if (this.handlers.size > 0 || this.drains.size > 0) return;
    for (const resource of this.subscribed) if (!this.takenDown.has(resource)) return;
    if (this.servers.size === 0 && this.entries.length === 0) {
      process.kill(process.pid, 'SIGTERM');  // nothing of ours to drain: as without takeDown
      return;
    }
    log('drained, exiting');
    process.exit(0);
  }

  // drain(server) plus tookDown for the resources the server listens on.
  drain(server, options, callback) {
    const resource = this.servers.get(server);
    const onStopped = () => {
      if (resource !== undefined && this.active) this.tookDown(resource);
      if (options && options.onStopped) options.onStopped();
    };
    return drainServer(server, { ...options, onStopped }, callback);
  }

  // listen(server, resource): listens on the daemon's socket, or binds the resource
  // itself outside serverswap. Resolves with the server once it is listening.
  async listen(server, resource) {
    const handle = await this.readyFor(resource);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.removeListener('error', reject);
        resolve(server);
      };
      if (handle) return server.listen(handle, done);
      const r = parseResource(resource);
      if (!r) return reject(new ServerswapError(`serverswap: bad resource ${resource}`));
      if (r.kind === 'unix') return server.listen(r.path, done);
      return server.listen(r.host ? { port: r.port, host: r.host } : { port: r.port }, done);
    });
  }
}

module.exports = { Client, ServerswapError };
