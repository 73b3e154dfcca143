'use strict';
// A Node server under the real daemon survives a SIGKILL of the daemon: it serves on, its
// relay resumes it with the next daemon (docs/protocol.md section 11), and it is then
// swapped under load with no failed request.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { Daemon, SERVERSWAP_BIN, cleanEnv, run } = require('./support');

const APP = path.join(__dirname, 'servers', 'app.js');
const DEPLOY_LOOP = path.join(__dirname, 'deploy_loop.js');
const RESOURCE = '127.0.0.1:0';
const NODE = process.execPath;

const skip = fs.existsSync(SERVERSWAP_BIN) ? false : `no serverswap binary at ${SERVERSWAP_BIN} (set SERVERSWAP_BIN)`;

test('a server resumes after SIGKILL of the daemon, then swaps under load with 0 failures', { skip }, async () => {
  const daemon = await Daemon.start('--takedown-timeout', '20s', '--adopt-timeout', '10s');
  try {
    const argv = [NODE, APP, 'handle', RESOURCE];
    const first = await daemon.deploy(argv);
    assert.equal(first.code, 0, first.output + daemon.output.text);
    const address = await daemon.addressOf(RESOURCE);
    const [oldPid] = await daemon.serverPids();

    await daemon.killAndRestart();
    assert.ok(await daemon.output.waitFor('resumed, up', 15000), daemon.output.text);
    const [server] = (await daemon.status()).servers;
    assert.equal(server.pid, oldPid);
    assert.equal(server.state, 'up');
    assert.equal(await daemon.addressOf(RESOURCE), address);

    const deploy = [NODE, DEPLOY_LOOP, SERVERSWAP_BIN, daemon.socket, '1', '--', ...argv];
    const verify = await run([SERVERSWAP_BIN, 'verify', '--duration', '6', '--clients', '4',
      '--rate', '200', '--mode', 'close', address, '--', ...deploy], { env: cleanEnv(), timeoutMs: 120000 });
    assert.equal(verify.code, 0, verify.output + '\n--- daemon:\n' + daemon.output.text);
    assert.match(verify.output, /failed 0\b/, verify.output);
    assert.match(verify.output, /deploy_loop: 1 deploys ok/, verify.output);
    // The resumed server got takeDown from the new daemon (its relay passed it on), said
    // tookDown and exited.
    const gone = (t) => t.includes(`server ${oldPid} (gen 1) 127.0.0.1:0: stopped accepting`) &&
      t.includes(`server ${oldPid} (gen 1): exited`);
    assert.ok(await daemon.output.waitFor(gone, 30000), daemon.output.text);
    assert.ok(!(await daemon.serverPids()).includes(oldPid));
  } finally {
    await daemon.close();
  }
});
