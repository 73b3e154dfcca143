'use strict';
// A test server: node app.js MODE RESOURCE
//   listen     readyFor(cb) then http.createServer().listen(port of the resource): the
//              listen patch redirects it; default drain on takeDown
//   handle     await readyFor(), listen(handle), onTakedown with a promise + drain
//   throw      readyFor callback throws after listening
//   fail       readyFor, then fail()
//   bad        readyFor('bad') / a malformed resource: prints the error text, then fail()
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
} else {
  say(`unknown mode ${mode}`);
  process.exit(2);
}
