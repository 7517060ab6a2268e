// A WebSocket server on Node's `ws`, written the way the seed articles write theirs, for
// heartline's interop tests.
//
// usage: node seed_server.js MODE [PORT]
//   MODE protocol   the server pings every client with protocol Pings (ws.ping()),
//                   terminates a client that did not answer the previous one (the
//                   heartbeat of ws's README) and echoes every message back
//   MODE text-ping  seed 001: text "ping" is answered with "pong"; other messages come
//                   back as `Echo: ${data}`
//   MODE json-echo  seed 002: JSON messages whose ModeCode is "message" or "heart_beat"
//                   are sent back unchanged
//   PORT            0 (default) picks a free port
// Prints "listening PORT" once it accepts connections. Binds 127.0.0.1 only.
'use strict';

const WebSocket = require('ws');

const mode = process.argv[2];
const port = Number(process.argv[3] || 0);
const PING_INTERVAL_MS = 200;

if (!['protocol', 'text-ping', 'json-echo'].includes(mode)) {
  console.error('usage: node seed_server.js protocol|text-ping|json-echo [PORT]');
  process.exit(2);
}

const wss = new WebSocket.Server({ host: '127.0.0.1', port }, () => {
  console.log(`listening ${wss.address().port}`);
});

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (mode === 'protocol') {
    ws.isAlive = true;
    ws.on('pong', () => {
      ws.isAlive = true;
    });
    const timer = setInterval(() => {
      if (ws.isAlive === false) {
        ws.terminate();
        return;
      }
      ws.isAlive = false;
      ws.ping();
    }, PING_INTERVAL_MS);
    ws.on('close', () => clearInterval(timer));
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else if (mode === 'text-ping') {
    // Seed 001 compares `data === 'ping'`; ws 8 hands over a Buffer, so compare its text.
    ws.on('message', (data) => {
      if (data.toString() === 'ping') {
        ws.send('pong');
        return;
      }
      ws.send(`Echo: ${data}`);
    });
  } else {
    // Seed 002's messageHandler. It was written for ws 7, which handed text messages
    // over as strings, so `this.send(e)` echoed text; ws 8 hands over a Buffer, which
    // `send` would echo as a binary frame. Echo text, as the seed's server did.
    ws.on('message', (e) => {
      let data;
      try {
        data = JSON.parse(e);
      } catch (err) {
        return;
      }
      switch (data.ModeCode) {
        case 'message':
        case 'heart_beat':
          ws.send(e.toString());
          break;
      }
    });
  }
});
