'use strict';
// resume_probe: the resume contract's server for the Node.js client (see resume_probe.cc,
// which does the same with the C/C++ client, for the report it appends to REPORT.<pid>).
// The Node client subscribes to takeDown for every resource it asks for (it drains by
// default); the handler on RESOURCE_A is the probe's.
//   node resume_probe.js CLIENT_DIR REPORT RESOURCE_A RESOURCE_B UP
const fs = require('fs');
const net = require('net');
const path = require('path');

const [clientDir, reportPath, a, b, up] = process.argv.slice(2);
const serverswap = require(clientDir);
const inherited = require(path.join(clientDir, 'lib', 'inherited'));
const report = (line) => fs.appendFileSync(`${reportPath}.${process.pid}`, `${line}\n`);

// What the descriptor is bound to (from /proc: Node's server.address() is null for a
// Unix socket listened on by handle).
function spell(handle) {
  const address = inherited.listeningAddress(handle.fd);
  return address ? inherited.spell(address) : '?';
}

function listen(handle) {
  return new Promise((resolve) => {
    const server = net.createServer((c) => c.end());
    server.listen(handle, () => resolve(server));
  });
}

async function main() {
  process.on('SIGTERM', () => {});  // as resume_probe.cc: report takeDown first
  if (up !== 'auto') serverswap.manualUp();
  const handleA = await serverswap.readyFor(a);
  await listen(handleA);
  const handleB = await serverswap.readyFor(b);
  await listen(handleB);
  serverswap.onTakedown(a, (done, resource) => {
    report(`takeDown ${resource}`);
    done();
    process.exit(0);
  });
  if (up === '1') serverswap.serverUp();
  report(`ready ${spell(handleA)} ${spell(handleB)}`);
  setInterval(() => {}, 1 << 30);  // serve on until taken down
}

main().catch((err) => {
  process.stderr.write(`resume_probe: ${err.stack}\n`);
  process.exit(1);
});
