'use strict';
// node_probe: what the Node.js client reads from the inherited-socket environment, in the
// format of client_probe (REPORT.<pid>); under a daemon it then takes the first RESOURCE
// with readyFor (answered from the inherited socket), listens on it and says serverUp.
//   node node_probe.js CLIENT_DIR REPORT [RESOURCE...]
const fs = require('fs');
const net = require('net');
const path = require('path');

const [clientDir, reportPath, ...resources] = process.argv.slice(2);
const inherited = require(path.join(clientDir, 'lib', 'inherited'));

const set = inherited.readInherited(process.env, process.pid, (t) => process.stderr.write(`${t}\n`));
const lines = [`pid ${process.pid}`, `convention ${set.convention || '-'}`];
for (const s of set.sockets) {
  const address = inherited.listeningAddress(s.fd);
  lines.push(`fd ${s.fd} name ${s.name || '-'} address ${address ? inherited.spell(address) : '?'} listening ${address ? 1 : 0}`);
}
for (const resource of resources) {
  try {
    const match = inherited.find(set.sockets, resource);
    lines.push(`match ${resource} ${match ? match.fd : '-'}`);
  } catch (err) {
    lines.push(`match ${resource} error`);
  }
}
fs.writeFileSync(`${reportPath}.${process.pid}`, lines.join('\n') + '\n');

if (process.env.SERVERSWAP_SOCKET && resources.length > 0) {
  const serverswap = require(clientDir);
  serverswap.manualUp();
  serverswap.readyFor(resources[0]).then((handle) => {
    net.createServer((c) => c.end()).listen(handle, () => serverswap.serverUp());
  });
}
