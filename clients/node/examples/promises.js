'use strict';
// Promises and drain: node promises.js [RESOURCE]   (default ":8080")
//
// serverswap.listen() listens on the daemon's socket (or binds the resource itself when
// not run under serverswap); serverUp is sent once it listens. No onTakedown handler is
// registered, so on takeDown the server drains (keep-alive clients get "Connection:
// close" on their next request, nothing is reset) and the process exits 0.
const http = require('http');
const serverswap = require('../');

async function main() {
  const resource = process.argv[2] || ':8080';
  // ... connect to databases, load things: the old server serves meanwhile ...
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`Hello from pid ${process.pid}\n`);
  });
  await serverswap.listen(server, resource);
  console.error(`promises example pid ${process.pid} serving ${resource}`);
  // Outside serverswap, Ctrl-C / SIGTERM drains too.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => serverswap.drain(server).then(() => process.exit(0)));
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
