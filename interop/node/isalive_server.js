// The usual Node `ws` server heartbeat: the `isAlive` pattern from the ws README.
// One setInterval pings every client; a client that did not answer the previous
// ping is terminated. Messages are echoed, text "ping" gets "pong" (seed 001).
//
// It is heartline's load baseline and speaks the same command line and JSON
// lines as heartline's `server` example, so tests and the load driver can run
// either one:
//   node isalive_server.js [--listen 127.0.0.1:PORT] [--path /ws/] [--ping-interval-ms N]
// stdout: {"event":"listening","addr":...}, {"event":"connected","name":...},
//         {"event":"evicted","name":...,"reason":"silent"},
//         {"event":"disconnected","name":...,"code":...}
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const args = { listen: '127.0.0.1:0', path: '/ws/', pingIntervalMs: 1000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const value = argv[i + 1];
  if (value === undefined) usage(`missing value for ${argv[i]}`);
  switch (argv[i]) {
    case '--listen': args.listen = value; break;
    case '--path': args.path = value; break;
    case '--ping-interval-ms': args.pingIntervalMs = Number(value); break;
    default: usage(`unknown argument ${argv[i]}`);
  }
}
if (!(args.pingIntervalMs > 0)) usage('--ping-interval-ms must be a positive number');
const colon = args.listen.lastIndexOf(':');
if (colon < 0) usage('--listen must be HOST:PORT');
const host = args.listen.slice(0, colon);
const port = Number(args.listen.slice(colon + 1));

function usage(message) {
  console.error(`isalive_server: ${message}`);
  console.error('usage: node isalive_server.js [--listen 127.0.0.1:PORT] [--path /ws/] [--ping-interval-ms N]');
  process.exit(2);
}

const started = Date.now();
function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, t_ms: Date.now() - started, ...fields }) + '\n');
}

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});
const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  if (!url.pathname.startsWith(args.path)) {
    emit('rejected', { path: url.pathname, status: 404 });
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  const name = url.searchParams.get('name') || '';
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.name = name;
    wss.emit('connection', ws, req);
  });
});

function heartbeat() {
  this.isAlive = true;
}

wss.on('connection', function connection(ws) {
  ws.isAlive = true;
  emit('connected', { name: ws.name });
  ws.on('error', () => {});
  ws.on('pong', heartbeat);
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'ping') {
      ws.send('pong');
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('close', (code) => {
    if (!ws.evicted) emit('disconnected', { name: ws.name, code });
  });
});

const interval = setInterval(function ping() {
  wss.clients.forEach(function each(ws) {
    if (ws.isAlive === false) {
      ws.evicted = true;
      emit('evicted', { name: ws.name, reason: 'silent' });
      return ws.terminate();
    }
    ws.isAlive = false;
    ws.ping();
  });
}, args.pingIntervalMs);

wss.on('close', function close() {
  clearInterval(interval);
});

server.listen(port, host, () => {
  const addr = server.address();
  emit('listening', { addr: `${addr.address}:${addr.port}` });
});
