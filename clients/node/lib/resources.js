'use strict';
// Resource names (docs/protocol.md section 5) and matching a net.Server#listen() call
// against the resources this process was handed. Pure functions: no I/O.

// Parses ":8080", "127.0.0.1:8080", "[::1]:8080", "unix:/path". Returns
// {kind: 'tcp', host: '' | '127.0.0.1' | '::1', port} or {kind: 'unix', path}, or null.
function parseResource(resource) {
  if (typeof resource !== 'string') return null;
  if (resource.startsWith('unix:')) {
    const path = resource.slice(5);
    return path ? { kind: 'unix', path } : null;
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(resource);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { kind: 'tcp', host: m[1] !== undefined ? m[1] : m[2], port };
}

// The port of an address line from the daemon ("[::]:8080", "127.0.0.1:43211").
function portOfAddress(address) {
  const m = /:(\d+)$/.exec(address || '');
  return m ? Number(m[1]) : null;
}

function isPort(value) {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= 65535;
  return typeof value === 'string' && /^\d{1,5}$/.test(value) && Number(value) <= 65535;
}

// What a listen() call asks for, from its arguments as net.Server#listen takes them:
// {port, host} (host undefined when not given), {path}, or null (a handle, an fd,
// nothing we could redirect).
function listenRequest(args) {
  const first = args[0];
  if (first !== null && typeof first === 'object') {
    if (first._handle || first.fd !== undefined || typeof first.getAsyncId === 'function') {
      return null;  // a handle or {fd}
    }
    if (isPort(first.port)) {
      return { port: Number(first.port), host: first.host || undefined };
    }
    if (typeof first.path === 'string') return { path: first.path };
    return null;
  }
  if (isPort(first)) {
    return { port: Number(first), host: typeof args[1] === 'string' ? args[1] : undefined };
  }
  if (typeof first === 'string' && first !== '') return { path: first };
  return null;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

// Which of the handed resources a listen() request is for. `handed` is an array of
// {resource, address}; a port-0 resource matches the port it was actually bound to.
// Returns the resource name or null. An exact host match wins over a port-only match.
function matchListen(request, handed) {
  if (!request) return null;
  let best = null;
  let bestScore = 0;
  for (const { resource, address } of handed) {
    const r = parseResource(resource);
    if (!r) continue;
    let score = 0;
    if (request.path !== undefined) {
      if (r.kind === 'unix' && r.path === request.path) score = 3;
    } else if (r.kind === 'tcp') {
      const port = r.port !== 0 ? r.port : portOfAddress(address);
      if (port !== null && port !== 0 && port === request.port) {
        const host = request.host;
        if (host === undefined || host === r.host) score = 3;
        else if (WILDCARDS.has(host) || WILDCARDS.has(r.host)) score = 2;
        else if (host === 'localhost' && (r.host === '127.0.0.1' || r.host === '::1')) score = 2;
        else score = 1;  // the same port on another address: binding it would fail anyway
      }
    }
    if (score > bestScore) {
      best = resource;
      bestScore = score;
    }
  }
  return best;
}

module.exports = { parseResource, portOfAddress, listenRequest, matchListen };
