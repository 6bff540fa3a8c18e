// Verifies a JWT the hub signed (a service account's RS256 bearer assertion) with the `jose`
// library, so the tests never check the hub's JWT code against itself.
// Input (stdin, JSON): { jwt, public_key_pem (SPKI "BEGIN PUBLIC KEY"), audience, issuer }
// Output (stdout, JSON): { ok: true, header: {...}, claims: {...} } when the signature, algorithm
// (RS256 only), audience, issuer and times (exp, nbf) hold; { ok: false, error: "..." } otherwise.
// Exits 0 either way; non-zero only when the input itself cannot be read.
'use strict';

async function verify(req) {
  // jose is ESM-only: a dynamic import works from this CommonJS script on any Node.
  const { importSPKI, jwtVerify } = await import('jose');
  try {
    const key = await importSPKI(req.public_key_pem, 'RS256');
    const { payload, protectedHeader } = await jwtVerify(req.jwt, key, {
      algorithms: ['RS256'],
      audience: req.audience,
      issuer: req.issuer,
    });
    return { ok: true, header: protectedHeader, claims: payload };
  } catch (e) {
    return { ok: false, error: `${e && e.code ? `${e.code}: ` : ''}${e && e.message || e}` };
  }
}

let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', async () => {
  try {
    process.stdout.write(JSON.stringify(await verify(JSON.parse(input))));
  } catch (e) {
    process.stderr.write(String(e && e.stack || e));
    process.exit(1);
  }
});
