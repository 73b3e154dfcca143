'use strict';
// The real daemon, real Node servers, loopback: swaps under load with 0 failed requests,
// the seed example unmodified, and failed starts that never take the old server down.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { Daemon, SERVERSWAP_BIN, PACKAGE_ROOT, cleanEnv, run, get, portIsFree, processExists } = require('./support');

const APP = path.join(__dirname, 'servers', 'app.js');
const DEPLOY_LOOP = path.join(__dirname, 'deploy_loop.js');
const SEED_EXAMPLE = path.join(PACKAGE_ROOT, 'examples', 'server.js');
const RESOURCE = '127.0.0.1:0';
const SWAPS = 20;
const NODE = process.execPath;

const haveBinary = fs.existsSync(SERVERSWAP_BIN);
const skip = haveBinary ? false : `no serverswap binary at ${SERVERSWAP_BIN} (set SERVERSWAP_BIN)`;

async function withDaemon(body) {
  const daemon = await Daemon.start('--takedown-timeout', '20s');
  try {
    await body(daemon);
  } finally {
    await daemon.close();
  }
}

async function deployOk(daemon, argv) {
  const done = await daemon.deploy(argv);
  assert.equal(done.code, 0, done.output + daemon.output.text);
}

// verify with SWAPS deploys of `argv` a third of the way in; returns the report.
async function swapUnderLoad(daemon, address, mode, argv, { swaps = SWAPS, duration = 15 } = {}) {
  const deploy = [NODE, DEPLOY_LOOP, SERVERSWAP_BIN, daemon.socket, String(swaps), '--', ...argv];
  const verify = await run([SERVERSWAP_BIN, 'verify', '--duration', String(duration), '--clients', '8',
    '--rate', '400', '--mode', mode, address, '--', ...deploy], { env: cleanEnv(), timeoutMs: 120000 });
  const report = verify.output;
  assert.equal(verify.code, 0, report + '\n--- daemon:\n' + daemon.output.text);
  assert.match(report, /failed 0\b/, report);
  assert.match(report, new RegExp(`deploy_loop: ${swaps} deploys ok`), report);
  return report;
}

// Every replaced server logged `needle` and exited 0; one server is left.
async function assertOldOnesDrained(daemon, firstPids, needle, timeoutMs = 30000) {
  const enough = (t) => t.split(needle).length - 1 >= SWAPS &&
    t.split('exited with status 0').length - 1 >= SWAPS;
  assert.ok(await daemon.output.waitFor(enough, timeoutMs),
    `expected ${SWAPS} × "${needle}" and exits:\n${daemon.output.text}`);
  assert.equal(daemon.output.count(needle), SWAPS, daemon.output.text);
  assert.equal(daemon.output.count('exited with status 0'), SWAPS, daemon.output.text);
  for (const pid of firstPids) assert.ok(!processExists(pid), `pid ${pid} survived`);
  assert.equal((await daemon.serverPids()).length, 1);
}

async function swapTest(mode, argv, needle) {
  await withDaemon(async (daemon) => {
    await deployOk(daemon, argv);
    const address = await daemon.addressOf(RESOURCE);
    assert.ok(address && !address.endsWith(':0'), address);
    const firstPids = await daemon.serverPids();
    await swapUnderLoad(daemon, address, mode, argv);
    await assertOldOnesDrained(daemon, firstPids, needle);
    assert.deepEqual(await get(address), { status: 200, body: 'v1\n' });
  });
}

test('20 swaps under load, a new connection per request (onTakedown promise + drain)', { skip }, () =>
  swapTest('close', [NODE, APP, 'handle', RESOURCE], 'onTakedown ran'));

test('20 swaps under load, keep-alive clients (listen patch + default drain)', { skip }, () =>
  swapTest('keepalive', [NODE, APP, 'listen', RESOURCE], 'drained, exiting'));

test('20 swaps under load through a wrapper: sh -c "node app.js"', { skip }, () =>
  swapTest('keepalive', ['sh', '-c', `"${NODE}" "${APP}" handle ${RESOURCE}; echo "wrapper: node exited $?" >&2`],
    'onTakedown ran'));

// A deploy ends when the replaced server has exited, and the seed example exits 5 s after
// its drain (its own setTimeout): 20 swaps would take 100 s, so it swaps 3 times.
const SEED_SWAPS = 3;

test('the seed example, unmodified, swaps under keep-alive load on :8080', { skip }, async (t) => {
  if (!await portIsFree(8080)) {
    t.skip('port 8080 is taken on this machine: the seed example listens on 8080 as written');
    return;
  }
  await withDaemon(async (daemon) => {
    const argv = [NODE, SEED_EXAMPLE];
    await deployOk(daemon, argv);
    const firstPids = await daemon.serverPids();
    const address = '127.0.0.1:8080';
    assert.deepEqual(await get(address), { status: 200, body: 'Hello World!\n' });
    await swapUnderLoad(daemon, address, 'keepalive', argv, { swaps: SEED_SWAPS, duration: 27 });
    // Its takedown handler closes the server (a drain), then exits 5 s later.
    const enough = (text) => text.split('exited with status 0').length - 1 >= SEED_SWAPS;
    assert.ok(await daemon.output.waitFor(enough, 40000), daemon.output.text);
    // Each old one ran its takedown handler: server.close() drained, done() sent tookDown.
    assert.equal(daemon.output.count(': stopped accepting'), SEED_SWAPS, daemon.output.text);
    for (const pid of firstPids) assert.ok(!processExists(pid), `pid ${pid} survived`);
    assert.equal((await daemon.serverPids()).length, 1);
    assert.deepEqual(await get(address), { status: 200, body: 'Hello World!\n' });
  });
});

test('failed starts never take the old server down', { skip }, async (t) => {
  await withDaemon(async (daemon) => {
    await deployOk(daemon, [NODE, APP, 'listen', RESOURCE]);
    const address = await daemon.addressOf(RESOURCE);
    const oldPids = await daemon.serverPids();
    const cases = [['throw', RESOURCE], ['fail', RESOURCE], ['bad', 'no-such-resource']];
    for (const [mode, resource] of cases) {
      await t.test(mode, async () => {
        const done = await daemon.deploy([NODE, APP, mode, resource]);
        assert.equal(done.code, 1, done.output + daemon.output.text);
        assert.deepEqual(await daemon.serverPids(), oldPids);
        assert.deepEqual(await get(address), { status: 200, body: 'v1\n' });
      });
    }
    // The failed servers' own output may come after the deploy's answer (and the daemon
    // may kill the one that threw before its stack trace is printed).
    const logged = (t) => /app\[\d+\]: ServerswapError: .*no-such-resource/.test(t);
    assert.ok(await daemon.output.waitFor(logged, 10000), daemon.output.text);
    const log = daemon.output.text;
    assert.match(log, /app\[\d+\]: ServerswapError: .*no-such-resource/);
    // (A failed server that subscribed gets takeDown too and drains: only the old one counts.)
    assert.doesNotMatch(log, new RegExp(`serverswap\\[${oldPids[0]}\\]: drained`));
    assert.doesNotMatch(log, new RegExp(`server ${oldPids[0]} .*stopped accepting`));
  });
});

test('the promises example (serverswap.listen + default drain) swaps', { skip }, async () => {
  await withDaemon(async (daemon) => {
    await deployOk(daemon, [NODE, path.join(PACKAGE_ROOT, 'examples', 'promises.js'), RESOURCE]);
    const address = await daemon.addressOf(RESOURCE);
    const reply = await get(address);
    assert.equal(reply.status, 200);
    assert.match(reply.body, /Hello from pid \d+/);
    await deployOk(daemon, [NODE, path.join(PACKAGE_ROOT, 'examples', 'promises.js'), RESOURCE]);
    assert.ok(await daemon.output.waitFor('drained, exiting', 20000), daemon.output.text);
    assert.notDeepEqual(await get(address), reply);
  });
});

test('readyFor asked again and at once under the real daemon: one handle, the server comes up and serves', { skip }, async () => {
  await withDaemon(async (daemon) => {
    await deployOk(daemon, [NODE, APP, 'same', RESOURCE]);
    assert.ok(await daemon.output.waitFor((t) => /app\[\d+\]: same handle: /.test(t), 10000),
      daemon.output.text);
    assert.match(daemon.output.text, /app\[\d+\]: same handle: true/);
    const address = await daemon.addressOf(RESOURCE);
    assert.deepEqual(await get(address), { status: 200, body: 'v1\n' });
    assert.doesNotMatch(daemon.output.text, /no server listens on the socket handed/);
  });
});
