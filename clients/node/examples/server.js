var http = require('http'), serverswap = require('../');
serverswap.readyFor(':8080', function () {
  var server = http.createServer(function (req, res) {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end("Hello World!\n");
  }).listen(8080);
  serverswap.serverUp();             // optional, needed for deploy mode
  serverswap.onTakedown(':8080', function (done) {
    server.close(function () { done(); setTimeout(function () { process.exit(0); }, 5000); });
  });
});
