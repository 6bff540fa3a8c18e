// Signs a test webhook with the provider's official SDK and prints the headers to send.
// Input (stdin, JSON): { scheme, secret, body, url?, method?, id?, ts? , params? }
//   scheme: "retell" | "svix" | "twilio" | "hubspot-v3" | "hubspot-v1" | "hubspot-v2" |
//           "sendgrid-keygen" (a P-256 key: { publicKey: base64 SPKI DER, privateKey: PEM }) |
//           "sendgrid" (signs ts ++ body with req.privateKey using node's crypto, then checks the
//           signature with @sendgrid/eventwebhook's own verifier against req.publicKey)
//           "stripe" (Stripe's `t=<unix s>,v1=<hex>` header from the stripe SDK's own test helper,
//           sent in req.header, default `stripe-signature`; ts in unix seconds)
//   body: the exact request body (a string); params: form fields for Twilio form bodies.
// Output (stdout, JSON): { headers: { name: value } }
'use strict';
const { symmetric } = require('retell-sdk/lib/webhook_auth');
const { Webhook } = require('svix');
const twilio = require('twilio');
const { Signature } = require('@hubspot/api-client');
const crypto = require('crypto');
const { EventWebhook } = require('@sendgrid/eventwebhook');
const Stripe = require('stripe');

async function sign(req) {
  switch (req.scheme) {
    case 'retell':
      return { 'x-retell-signature': await symmetric.sign(req.body, req.secret, req.ts ?? Date.now()) };
    case 'svix': {
      const ts = req.ts ?? Math.floor(Date.now() / 1000);
      const sig = new Webhook(req.secret).sign(req.id, new Date(ts * 1000), req.body);
      return { 'svix-id': req.id, 'svix-timestamp': String(ts), 'svix-signature': sig };
    }
    case 'twilio':
      return { 'x-twilio-signature': twilio.getExpectedTwilioSignature(req.secret, req.url, req.params ?? {}) };
    case 'hubspot-v3': {
      const ts = req.ts ?? Date.now();
      const sig = Signature.getSignature(req.method ?? 'POST', 'v3', {
        clientSecret: req.secret, requestBody: req.body, url: req.url, timestamp: ts,
      });
      return { 'x-hubspot-signature-v3': sig, 'x-hubspot-request-timestamp': String(ts) };
    }
    case 'hubspot-v1':
    case 'hubspot-v2': {
      const version = req.scheme.slice(-2);
      const sig = Signature.getSignature(req.method ?? 'POST', version, {
        clientSecret: req.secret, requestBody: req.body, url: req.url,
      });
      return { 'x-hubspot-signature': sig, 'x-hubspot-signature-version': version };
    }
    case 'sendgrid-keygen': {
      const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      return {
        publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
        privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      };
    }
    case 'sendgrid': {
      const ts = String(req.ts ?? Math.floor(Date.now() / 1000));
      const sig = crypto.sign('sha256', Buffer.from(ts + req.body), { key: req.privateKey, dsaEncoding: 'der' }).toString('base64');
      const ew = new EventWebhook();
      const pem = `-----BEGIN PUBLIC KEY-----\n${req.publicKey}\n-----END PUBLIC KEY-----\n`;
      if (!ew.verifySignature(ew.convertPublicKeyToECDSA(pem), req.body, sig, ts)) {
        throw new Error('@sendgrid/eventwebhook refuses the signature');
      }
      return { 'x-twilio-email-event-webhook-signature': sig, 'x-twilio-email-event-webhook-timestamp': ts };
    }
    case 'stripe': {
      const stripe = new Stripe('sk_test_unused');
      const value = stripe.webhooks.generateTestHeaderString({
        payload: req.body,
        secret: req.secret,
        timestamp: req.ts ?? Math.floor(Date.now() / 1000),
      });
      return { [req.header ?? 'stripe-signature']: value };
    }
    default:
      throw new Error(`unknown scheme ${req.scheme}`);
  }
}

let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', async () => {
  try {
    const headers = await sign(JSON.parse(input));
    process.stdout.write(JSON.stringify({ headers }));
  } catch (e) {
    process.stderr.write(String(e && e.stack || e));
    process.exit(1);
  }
});
