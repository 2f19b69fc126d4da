// A JsSIP user agent (SIP over WebSocket, RFC 7118) for the interop tests, driven
// over stdin/stdout with one JSON object per line, so no browser is needed.
//
//   node phone.js WS_URL USER PASSWORD DOMAIN
//
// It registers at once. Commands on stdin: {"message": {"to": USER, "body": TEXT}},
// {"quit": true} (unregister, close the socket, exit); stdin closing is quit too.
// Events on stdout: registered, registration_failed, unregistered, message (one
// received), sent, send_failed; each with what the test checks.
'use strict';

if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = require('ws'); // Node.js before 22 has no WebSocket of its own
}
const JsSIP = require('jssip');
const readline = require('readline');

JsSIP.debug.disable('JsSIP:*');
const [url, user, password, domain] = process.argv.slice(2);

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(url)],
  uri: `sip:${user}@${domain}`,
  password,
  register: true,
  register_expires: 600,
  connection_recovery_min_interval: 60,
  connection_recovery_max_interval: 60,
});

ua.on('registered', (e) => {
  const response = e.response;
  emit('registered', {
    status: response.status_code,
    require: response.getHeader('Require') || '',
    flow_timer: response.getHeader('Flow-Timer') || '',
    contacts: response.getHeaders('Contact').length,
  });
});
ua.on('registrationFailed', (e) => {
  emit('registration_failed', { cause: e.cause, status: e.response ? e.response.status_code : 0 });
});
ua.on('unregistered', () => emit('unregistered', {}));
ua.on('newMessage', (e) => {
  if (e.originator !== 'remote') {
    return;
  }
  emit('message', { from: e.request.from.uri.user, body: e.request.body });
});

function quit() {
  ua.stop();
  setTimeout(() => process.exit(0), 1000);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line);
  if (command.message) {
    ua.sendMessage(`sip:${command.message.to}@${domain}`, command.message.body, {
      eventHandlers: {
        succeeded: (e) => emit('sent', { status: e.response.status_code }),
        failed: (e) => emit('send_failed', {
          cause: e.cause,
          status: e.response ? e.response.status_code : 0,
        }),
      },
    });
  } else if (command.quit) {
    quit();
  }
}).on('close', quit);

ua.start();
