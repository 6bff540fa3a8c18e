// Plays a tenant's app receiving the hub's webhooks: verifies each with the official Svix library
// (which implements the Standard Webhooks spec), answers 204, and prints one JSON line per
// webhook on stdout: { id, type, verified, error?, body }. A webhook that does not verify gets 400.
// Usage: node receive.js PORT SECRET [SECRET_2]   (a second secret: verified with either)
'use strict';
const http = require('http');
const { Webhook } = require('svix');

const [port, ...secrets] = process.argv.slice(2);
const hooks = secrets.map((s) => new Webhook(s));

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': req.headers['webhook-id'],
        'webhook-timestamp': req.headers['webhook-timestamp'],
        'webhook-signature': req.headers['webhook-signature'],
      };
      let verified = false;
      let error = null;
      let type = null;
      for (const hook of hooks) {
        try {
          type = hook.verify(body, headers).type;
          verified = true;
          break;
        } catch (e) {
          error = String(e.message || e);
        }
      }
      process.stdout.write(
        JSON.stringify({ id: headers['webhook-id'], type, verified, error, path: req.url, traceparent: req.headers['traceparent'] || null, body }) + '\n',
      );
      res.writeHead(verified ? 204 : 400);
      res.end();
    });
  })
  .listen(Number(port), '127.0.0.1', () => process.stderr.write(`listening on ${port}\n`));
