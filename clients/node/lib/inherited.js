'use strict';
// Listening sockets a supervisor left open across exec, found through the environment: the
// contract of the C client (include/serverswap/serverswap.h, "Inherited sockets"). The first
// convention present wins:
//  - systemd: LISTEN_FDS=n (fds 3 .. 3+n-1), LISTEN_FDNAMES=a:b, only when LISTEN_PID is
//    this process;
//  - Server::Starter: SERVER_STARTER_PORT="8080=3;127.0.0.1:8081=4;/run/app.sock=5";
//  - einhorn: EINHORN_FD_COUNT=n, EINHORN_FD_0 .. EINHORN_FD_<n-1>.
// A resource matches a socket listening on its address (":8080": any address with port
// 8080; "unix:/p": the path) or whose LISTEN_FDNAMES name is the resource string.
//
// Node has no getsockname() or dup() for a bare descriptor, and wrapping one in a handle
// takes it over; so the socket's address and state are read from /proc (its inode from
// /proc/self/fd/N, then /proc/net/tcp, tcp6 and unix), which leaves the descriptor alone.

const fs = require('fs');
const os = require('os');
const { parseResource } = require('./resources');

const SYSTEMD_FIRST_FD = 3;
const MAX_FDS = 4096;
const TCP_LISTEN = '0A';
const UNIX_ACCEPTCON = 0x10000;
const UNIX_STREAM = 1;

function number(text, variable) {
  if (typeof text !== 'string' || !/^\d+$/.test(text)) {
    throw new Error(`${variable}=${text === undefined ? '' : text}: not a number`);
  }
  return Number(text);
}

function count(text, variable) {
  const n = number(text, variable);
  if (n > MAX_FDS) throw new Error(`${variable}=${text}: not a count of descriptors`);
  return n;
}

// {convention, sockets: [{fd, name}]}; convention '' when the variables are not ours.
function parseSystemd(env, pid) {
  if (env.LISTEN_FDS === undefined || env.LISTEN_PID === undefined) return { convention: '', sockets: [] };
  if (number(env.LISTEN_PID, 'LISTEN_PID') !== pid) return { convention: '', sockets: [] };
  const n = count(env.LISTEN_FDS, 'LISTEN_FDS');
  const names = env.LISTEN_FDNAMES !== undefined && n > 0 ? env.LISTEN_FDNAMES.split(':') : new Array(n).fill('');
  if (names.length !== n) {
    throw new Error(`LISTEN_FDNAMES=${env.LISTEN_FDNAMES}: names ${names.length} descriptors but LISTEN_FDS=${n}`);
  }
  return { convention: 'LISTEN_FDS', sockets: names.map((name, i) => ({ fd: SYSTEMD_FIRST_FD + i, name })) };
}

function parseServerStarter(text) {
  const sockets = [];
  const bad = () => new Error(`SERVER_STARTER_PORT=${text}: expected ADDRESS=FD;ADDRESS=FD...`);
  for (const entry of text.split(';')) {
    if (entry === '') continue;  // a trailing ';'
    // The last '=': a Unix path may hold one, the descriptor never does.
    const equals = entry.lastIndexOf('=');
    const fd = entry.slice(equals + 1);
    if (equals <= 0 || !/^\d+$/.test(fd)) throw bad();
    sockets.push({ fd: Number(fd), name: '' });
  }
  if (sockets.length === 0) throw bad();
  return { convention: 'SERVER_STARTER_PORT', sockets };
}

function parseEinhorn(env) {
  if (env.EINHORN_FD_COUNT === undefined) return { convention: '', sockets: [] };
  const n = count(env.EINHORN_FD_COUNT, 'EINHORN_FD_COUNT');
  const sockets = [];
  for (let i = 0; i < n; i++) sockets.push({ fd: number(env[`EINHORN_FD_${i}`], `EINHORN_FD_${i}`), name: '' });
  return { convention: 'EINHORN_FD_COUNT', sockets };
}

// The first convention present; a malformed one is logged and skipped.
function readInherited(env, pid, log) {
  const parsers = [
    () => parseSystemd(env, pid),
    () => (env.SERVER_STARTER_PORT !== undefined ? parseServerStarter(env.SERVER_STARTER_PORT)
      : { convention: '', sockets: [] }),
    () => parseEinhorn(env),
  ];
  for (const parse of parsers) {
    let set;
    try {
      set = parse();
    } catch (err) {
      if (log) log(`ignoring inherited sockets: ${err.message}`);
      continue;
    }
    if (set.convention) return set;
  }
  return { convention: '', sockets: [] };
}

// ---- what a descriptor is, from /proc ------------------------------------------------

function readLines(path) {
  try {
    return fs.readFileSync(path, 'latin1').split('\n').slice(1).filter((l) => l.trim() !== '');
  } catch (err) {
    return [];
  }
}

// The kernel prints each 32-bit word of an address in host byte order.
function hexAddressBytes(hex) {
  const bytes = Buffer.alloc(hex.length / 2);
  for (let i = 0; i < hex.length; i += 8) {
    const word = parseInt(hex.slice(i, i + 8), 16);
    if (os.endianness() === 'LE') bytes.writeUInt32LE(word, i / 2);
    else bytes.writeUInt32BE(word, i / 2);
  }
  return bytes;
}

// Canonical text of an IPv6 address (WHATWG URL serialises it per RFC 5952), or null.
function canonicalIPv6(text) {
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch (err) {
    return null;
  }
}

function tcpAddress(hex) {
  const [host, port] = hex.split(':');
  const bytes = hexAddressBytes(host);
  if (bytes.length === 4) return { family: 4, host: [...bytes].join('.'), port: parseInt(port, 16) };
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push(bytes.readUInt16BE(i).toString(16));
  return { family: 6, host: canonicalIPv6(words.join(':')), port: parseInt(port, 16) };
}

// inode -> {kind: 'tcp', family, host, port} | {kind: 'unix', path}, listening stream only.
function listeningTable() {
  const table = new Map();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readLines(file)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === TCP_LISTEN) table.set(f[9], { kind: 'tcp', ...tcpAddress(f[1]) });
    }
  }
  for (const line of readLines('/proc/net/unix')) {
    const f = line.trim().split(/\s+/);
    if ((parseInt(f[3], 16) & UNIX_ACCEPTCON) && parseInt(f[4], 16) === UNIX_STREAM && f.length >= 8) {
      table.set(f[6], { kind: 'unix', path: f.slice(7).join(' ') });
    }
  }
  return table;
}

function socketInode(fd) {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
    return m ? m[1] : null;
  } catch (err) {
    return null;
  }
}

// What fd listens on, or null when it is not a listening stream socket.
function listeningAddress(fd, table = listeningTable()) {
  const inode = socketInode(fd);
  return inode !== null && table.has(inode) ? table.get(inode) : null;
}

function spell(address) {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return address.family === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

function sameAddress(address, r) {
  if (r.kind === 'unix') return address.kind === 'unix' && address.path === r.path;
  if (address.kind !== 'tcp' || address.port !== r.port || r.port === 0) return false;
  if (r.host === '') return true;  // ":8080": any address with that port
  const host = r.host === 'localhost' ? '127.0.0.1' : r.host;
  if (address.family === 4) return host === address.host;
  // An IPv4 resource is also served by its v4-mapped IPv6 address.
  const want = canonicalIPv6(host.includes(':') ? host : `::ffff:${host}`);
  return want !== null && want === address.host;
}

function listensOn(fd, resource, table) {
  const r = parseResource(resource);
  const address = r && listeningAddress(fd, table);
  return Boolean(address) && sameAddress(address, r);
}

// The {fd, name, address} for a resource, or null. A LISTEN_FDNAMES name that matches a
// descriptor that is not a listening stream socket throws.
function find(sockets, resource) {
  const table = listeningTable();
  for (const s of sockets) {
    if (!s.name || s.name !== resource) continue;
    const address = listeningAddress(s.fd, table);
    if (!address) throw new Error(`inherited fd ${s.fd} (LISTEN_FDNAMES ${s.name}) is not a listening stream socket`);
    return { ...s, address: spell(address) };
  }
  for (const s of sockets) {
    if (listensOn(s.fd, resource, table)) return { ...s, address: spell(listeningAddress(s.fd, table)) };
  }
  return null;
}

module.exports = {
  parseSystemd, parseServerStarter, parseEinhorn, readInherited, listeningAddress, listensOn, find, spell,
};
