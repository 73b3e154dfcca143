'use strict';
// A test server: node app.js MODE RESOURCE
//   listen     readyFor(cb) then http.createServer().listen(port of the resource): the
//              listen patch redirects it; default drain on takeDown
//   handle     await readyFor(), listen(handle), onTakedown with a promise + drain
//   throw      readyFor callback throws after listening
//   fail       readyFor, then fail()
//   bad        readyFor('bad') / a malformed resource: prints the error text, then fail()
//   same       readyFor three times at once (promises and a callback), then twice more, says
//              whether every call gave the same handle, listens on it; default drain
//   samebad    readyFor('bad') twice at once: says whether both got the same error, fail()
//   warn       node app.js warn RESOURCE HOW OTHER: readyFor RESOURCE twice, listens on it
//              HOW (none | handle: server.listen(handle) | listen: serverswap.listen |
//              patched: listen(port) | unpatched: Node's own listen(handle)), then readyFor
//              OTHER and never listens on it; exits 0 once OTHER's warning was printed
//   idle       readyFor, never listens, nothing else to do: the process should just end
//   twoservers listens on the handle, then a second server on readyFor's handle again:
//              prints the second one's error and whether the first keeps the handle
// Logs lines "app[PID]: ..." to stderr. BODY env: the response body (default "v1\n").
const http = require('http');
const serverswap = require('../..');

const [mode, resource] = process.argv.slice(2);
const body = process.env.BODY || 'v1\n';
const say = (text) => process.stderr.write(`app[${process.pid}]: ${text}\n`);
const handler = (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(body);
};

function portOf(r) {
  const address = serverswap.address(r);
  return address ? address.port : serverswap.parseResource(r).port;
}

if (mode === 'listen') {
  serverswap.readyFor(resource, () => {
    http.createServer(handler).listen(portOf(resource), () => say('listening'));
  });
} else if (mode === 'handle') {
  (async () => {
    const handle = await serverswap.readyFor(resource);
    const server = http.createServer(handler);
    server.listen(handle);
    serverswap.onTakedown(resource, async () => {
      say('onTakedown ran');
      await serverswap.drain(server);
      say('drained, exiting');
      process.exit(0);
    });
  })();
} else if (mode === 'throw') {
  serverswap.readyFor(resource, () => {
    http.createServer(handler).listen(portOf(resource));
    throw new Error('app: configuration broken');
  });
} else if (mode === 'fail') {
  serverswap.readyFor(resource, () => {
    http.createServer(handler).listen(portOf(resource));
    serverswap.fail('app: cannot start').then(() => {
      if (process.env.APP_EXIT_AFTER_FAIL) process.exit(1);  // else the daemon kills it
    });
  });
} else if (mode === 'bad') {
  process.on('SIGTERM', () => {});
  serverswap.readyFor(resource).then(
    () => { say('no error?'); process.exit(3); },
    async (err) => {
      say(`ServerswapError: ${err.message}`);
      await serverswap.fail(`bad resource: ${err.message}`);
      process.exit(1);
    });
} else if (mode === 'same') {
  (async () => {
    const callback = () => new Promise((resolve) => serverswap.readyFor(resource, (h) => resolve(h)));
    const handles = await Promise.all([serverswap.readyFor(resource), callback(), serverswap.readyFor(resource)]);
    handles.push(await serverswap.readyFor(resource), await callback());
    say(`same handle: ${Boolean(handles[0]) && handles.every((h) => h === handles[0])}`);
    http.createServer(handler).listen(handles[0], () => say('listening'));
  })();
} else if (mode === 'samebad') {
  process.on('SIGTERM', () => {});
  Promise.allSettled([serverswap.readyFor(resource), serverswap.readyFor(resource)]).then(async ([a, b]) => {
    say(`both rejected: ${a.status === 'rejected' && b.status === 'rejected'}; ` +
      `same error: ${a.reason === b.reason}; ${a.reason && a.reason.message}`);
    await serverswap.fail('bad resource');
    process.exit(1);
  });
} else if (mode === 'warn') {
  // The warning delay is the same for both resources and OTHER's timer starts after
  // RESOURCE's (and, with HOW none, after RESOURCE's warning): any warning for RESOURCE, or a
  // repeat of it, is printed before OTHER's, which ends the process.
  const [how, other] = process.argv.slice(4);
  const keepAlive = setInterval(() => {}, 1000);  // the client's timers never hold the process
  const askOther = async () => {
    await serverswap.readyFor(other);
    say(`asked for ${other}`);
  };
  const write = process.stderr.write;
  process.stderr.write = function (chunk, ...rest) {
    const written = write.call(this, chunk, ...rest);
    const text = String(chunk);
    if (text.includes(`handed for ${other} `)) {
      clearInterval(keepAlive);
      process.exit(0);
    }
    if (how === 'none' && text.includes(`handed for ${resource} `)) askOther();
    return written;
  };
  (async () => {
    const handle = await serverswap.readyFor(resource);
    const again = await serverswap.readyFor(resource);
    say(`same handle: ${handle === again}`);
    if (how === 'none') return;
    const server = http.createServer(handler);
    const listening = new Promise((resolve) => server.once('listening', resolve));
    if (how === 'handle') server.listen(handle);
    else if (how === 'listen') await serverswap.listen(server, resource);
    else if (how === 'patched') server.listen(portOf(resource));
    else if (how === 'unpatched') require('../../lib/listen').originalListen.call(server, handle);
    await listening;
    say(`listening (${how})`);
    await askOther();
  })();
} else if (mode === 'idle') {
  serverswap.readyFor(resource).then((handle) => say(`got ${handle ? 'a handle' : 'nothing'}`));
} else if (mode === 'twoservers') {
  (async () => {
    const first = http.createServer(handler);
    await new Promise(async (resolve) => first.listen(await serverswap.readyFor(resource), resolve));
    const second = http.createServer((req, res) => res.end('second\n'));
    const again = await serverswap.readyFor(resource);
    const err = await new Promise((resolve) => {
      second.once('error', resolve);
      second.once('listening', () => resolve(null));
      second.listen(again);
    });
    say(`second server: ${err ? `${err.code} ${err.message}` : 'listening'}`);
    // No request to tell them apart: the fake relay accepts on the same socket. Node marks
    // the server a handle delivers connections to with its owner symbol.
    const owner = Object.getOwnPropertySymbols(again).find((sym) => sym.description === 'owner_symbol');
    say(`the handle still belongs to the first server: ${owner !== undefined && again[owner] === first}`);
    process.exit(0);
  })();
} else {
  say(`unknown mode ${mode}`);
  process.exit(2);
}
