'use strict';
// Test helpers: a real serverswap daemon in a private 0700 directory, deploys into it,
// HTTP GETs. Every wait is on an event (output, exit) with a deadline; no sleeps.
const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const PACKAGE_ROOT = path.dirname(__dirname);
const REPO_ROOT = path.dirname(path.dirname(PACKAGE_ROOT));
const SERVERSWAP_BIN = process.env.SERVERSWAP_BIN || path.join(REPO_ROOT, 'build', 'bin', 'serverswap');

function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('SERVERSWAP_') && !k.startsWith('NODE_') ) env[k] = v;
  }
  return { ...env, ...extra };
}

// Runs a command to its end: {code, signal, stdout, stderr}; kills it at the deadline.
function run(argv, { env = cleanEnv(), timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, output: stdout + stderr });
    });
  });
}

// Collects a stream's text; waitFor(predicate or string, ms) resolves when it holds.
class Output {
  constructor(...streams) {
    this.text = '';
    this.waiters = new Set();
    for (const s of streams) s.on('data', (d) => { this.text += d; this.check(); });
  }

  check() {
    for (const w of this.waiters) {
      if (w.test(this.text)) {
        clearTimeout(w.timer);
        this.waiters.delete(w);
        w.resolve(true);
      }
    }
  }

  waitFor(what, timeoutMs) {
    const test = typeof what === 'function' ? what : (t) => t.includes(what);
    if (test(this.text)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { test, resolve };
      w.timer = setTimeout(() => { this.waiters.delete(w); resolve(false); }, timeoutMs);
      this.waiters.add(w);
    });
  }

  count(needle) {
    return this.text.split(needle).length - 1;
  }
}

class Daemon {
  static async start(...options) {
    const d = new Daemon();
    d.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serverswap-node-'));
    fs.chmodSync(d.dir, 0o700);
    d.socket = path.join(d.dir, 'control.sock');
    d.options = options;
    await d.spawn();
    return d;
  }

  async spawn() {
    this.process = spawn(SERVERSWAP_BIN, ['--socket', this.socket, ...this.options, 'daemon'],
      { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.process.on('exit', resolve));
    this.output = new Output(this.process.stdout, this.process.stderr);
    if (!await this.output.waitFor('daemon listening on', 10000)) {
      await this.close();
      throw new Error('the daemon did not start:\n' + this.output.text);
    }
  }

  // SIGKILL to the daemon (its servers go on), then a new daemon on the same socket, which
  // takes them back from its state file, <socket>.state.json (docs/protocol.md section 11).
  async killAndRestart() {
    this.process.kill('SIGKILL');
    await this.exited;
    await this.spawn();
  }

  command(args, options) {
    return run([SERVERSWAP_BIN, '--socket', this.socket, ...args], options);
  }

  deploy(argv, extraEnv = {}) {
    return this.command(['--', ...argv], { env: cleanEnv(extraEnv) });
  }

  async status() {
    const done = await this.command(['status', '--json']);
    if (done.code !== 0) throw new Error('status failed: ' + done.output);
    return JSON.parse(done.stdout);
  }

  async addressOf(resource) {
    const r = (await this.status()).daemon.resources.find((x) => x.name === resource);
    return r ? r.address : null;
  }

  async serverPids() {
    return (await this.status()).servers.map((s) => s.pid);
  }

  async close() {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      await this.command(['stop'], { timeoutMs: 60000 });
      const timer = setTimeout(() => this.process.kill('SIGKILL'), 60000);
      await this.exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// One GET on a new connection: {status, body}.
function get(address, timeoutMs = 5000) {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('GET timed out')));
    req.on('error', reject);
  });
}

// Whether nothing listens on a TCP port (any address): we can bind it ourselves.
function portIsFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, () => server.close(() => resolve(true)));
  });
}

function processExists(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

module.exports = { SERVERSWAP_BIN, PACKAGE_ROOT, cleanEnv, run, Output, Daemon, get, portIsFree, processExists };
