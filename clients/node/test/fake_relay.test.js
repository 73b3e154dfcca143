'use strict';
// The client against a fake relay + daemon (test/fake_relay.js): handles, the listen
// patch, auto serverUp, errors, default drain and exit. No real daemon needed.
const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const APP = path.join(__dirname, 'servers', 'app.js');
const RELAY = path.join(__dirname, 'fake_relay.js');

function run(args, extraEnv, timeoutMs = 15000) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serverswap-node-fake-'));
  const logFile = path.join(dir, 'log');
  const env = { ...process.env, SERVERSWAP_SOCKET: path.join(dir, 'none.sock'), SERVERSWAP_ID: 'test-1',
    SERVERSWAP_RELAY: RELAY, FAKE_LOG: logFile, ...extraEnv };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [APP, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('timeout:\n' + output)); }, timeoutMs);
    // 'close', not 'exit': the relay shares the app's stdout and stderr, so the streams close
    // only once it too has exited, after logging every message the app sent it.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const messages = fs.existsSync(logFile)
        ? fs.readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, output, messages });
    });
  });
}

const keys = (messages) => messages.map((m) => Object.keys(m)[0]);

test('listen(port) is redirected, serverUp is sent once listening, takeDown drains and exits 0', async () => {
  const r = await run(['listen', '127.0.0.1:0'], { FAKE_TAKEDOWN: '1' });
  assert.equal(r.code, 0, r.output);
  assert.deepEqual(keys(r.messages), ['hello', 'onTakedown', 'readyFor', 'serverUp', 'tookDown'], r.output);
  assert.equal(r.messages[0].hello.id, 'test-1');
  assert.equal(r.messages[0].hello.upMessage, true);
  assert.match(r.output, /listening/);
  assert.match(r.output, /drained, exiting/);
});

test('await readyFor() gives a handle; the onTakedown promise handler runs', async () => {
  const r = await run(['handle', '127.0.0.1:0'], { FAKE_TAKEDOWN: '1' });
  assert.equal(r.code, 0, r.output);
  assert.deepEqual(keys(r.messages), ['hello', 'onTakedown', 'readyFor', 'serverUp', 'tookDown'], r.output);
  assert.match(r.output, /onTakedown ran/);
});

test('a throw in the readyFor callback sends fail, never serverUp, and crashes', async () => {
  const r = await run(['throw', '127.0.0.1:0'], {});
  assert.notEqual(r.code, 0, r.output);
  assert.ok(!keys(r.messages).includes('serverUp'), r.output);
  assert.ok(keys(r.messages).includes('fail'), r.output);
  assert.match(r.output, /configuration broken/);
});

test('fail() is sent and serverUp never is', async () => {
  const r = await run(['fail', '127.0.0.1:0'], { APP_EXIT_AFTER_FAIL: '1' });
  assert.equal(r.code, 1, r.output);
  assert.deepEqual(keys(r.messages), ['hello', 'onTakedown', 'readyFor', 'fail'], r.output);
  assert.equal(r.messages[3].fail, 'app: cannot start');
});

test('an error reply rejects readyFor with the daemon text', async () => {
  const r = await run(['bad', 'bad'], {});
  assert.equal(r.code, 1, r.output);
  assert.match(r.output, /ServerswapError: bad resource: bad/);
  assert.deepEqual(keys(r.messages), ['hello', 'onTakedown', 'readyFor', 'fail'], r.output);
});

test('a refused hello fails readyFor with the daemon reason, not "connection closed"', async () => {
  const r = await run(['handle', '127.0.0.1:0'], { FAKE_REFUSE_HELLO: '1' });
  assert.notEqual(r.code, 0, r.output);
  assert.match(r.output, /the daemon refused this server: unknown server id test-1/);
  assert.doesNotMatch(r.output, /connection to the daemon closed/);
});

// ---- one handle per resource; the warning for a handle nothing listens on ---------------

const readyFors = (messages) => messages.filter((m) => 'readyFor' in m);
const WARNING = 'no server listens on the socket handed for';
const FAST_WARNING = { SERVERSWAP_TEST_LISTEN_WARNING_MS: '100' };

test('readyFor asked again, at once or later, promise or callback: the same handle, one readyFor sent', async () => {
  const r = await run(['same', '127.0.0.1:0'], { FAKE_TAKEDOWN: '1' });
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /same handle: true/);
  assert.deepEqual(readyFors(r.messages), [{ readyFor: '127.0.0.1:0' }], r.output);
  assert.deepEqual(keys(r.messages), ['hello', 'onTakedown', 'readyFor', 'serverUp', 'tookDown'], r.output);
  assert.match(r.output, /drained, exiting/);
});

test('readyFor asked twice at once for a refused resource: both get the same error, one readyFor sent', async () => {
  const r = await run(['samebad', 'bad'], {});
  assert.equal(r.code, 1, r.output);
  assert.match(r.output, /both rejected: true; same error: true; bad resource: bad/);
  assert.deepEqual(readyFors(r.messages), [{ readyFor: 'bad' }], r.output);
});

test('a handed socket nothing listens on is warned about once, naming the resource and the remedy', async () => {
  const r = await run(['warn', '127.0.0.1:0', 'none', 'other'], FAST_WARNING);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /same handle: true/);
  const line = r.output.split('\n').find((l) => l.includes(`${WARNING} 127.0.0.1:0 `));
  assert.ok(line, r.output);
  assert.match(line, /^serverswap\[\d+\]: /);
  assert.match(line, /0\.1 s after it arrived \(the automatic serverUp waits for it\): pass the handle to server\.listen\(handle\), or use serverswap\.listen\(server, "127\.0\.0\.1:0"\)$/);
  assert.equal(r.output.split(`${WARNING} 127.0.0.1:0 `).length - 1, 1, r.output);
  assert.equal(r.output.split(`${WARNING} other `).length - 1, 1, r.output);
  assert.equal(readyFors(r.messages).length, 2, r.output);  // 127.0.0.1:0 once, other once
});

for (const how of ['handle', 'listen', 'patched', 'unpatched']) {
  test(`no warning for a handed socket listened on in time (${how})`, async () => {
    const r = await run(['warn', '127.0.0.1:0', how, 'other'], FAST_WARNING);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`listening \\(${how}\\)`));
    assert.ok(r.output.includes(`${WARNING} other `), r.output);  // the warning works ...
    assert.ok(!r.output.includes(`${WARNING} 127.0.0.1:0`), r.output);  // ... and was not due
    assert.equal(readyFors(r.messages).length, 2, r.output);
  });
}

test('the warning timer never keeps the process alive', async () => {
  // Default delay (5 s): a timer holding the process would print the warning before the end.
  const r = await run(['idle', '127.0.0.1:0'], {});
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /got a handle/);
  assert.ok(!r.output.includes(WARNING), r.output);
});

test('a second net.Server on the same handle gets an error instead of taking the first one over', async () => {
  const r = await run(['twoservers', '127.0.0.1:0'], {});
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /second server: ERR_SERVERSWAP_HANDLE_IN_USE serverswap: another net\.Server already listens on the handle for 127\.0\.0\.1:0; one server per handle/);
  assert.match(r.output, /the handle still belongs to the first server: true/);
});
