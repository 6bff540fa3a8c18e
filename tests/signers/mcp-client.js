// An MCP client from the official TypeScript SDK (@modelcontextprotocol/sdk): connects to a
// Streamable HTTP server with a bearer token, lists its tools and calls some.
// Input (stdin, JSON): { url, token, calls: [{ name, arguments }] }
// Output (stdout, JSON): { tools: [...] , results: [...] } or { error: "..." } when the server
// refuses the connection or the listing.
'use strict';
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

async function main(req) {
  const transport = new StreamableHTTPClientTransport(new URL(req.url), {
    requestInit: { headers: { Authorization: `Bearer ${req.token}` } },
  });
  const client = new Client({ name: 'hub-tests', version: '1.0.0' });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    const results = [];
    for (const call of req.calls ?? []) {
      try {
        results.push(await client.callTool({ name: call.name, arguments: call.arguments ?? {} }));
      } catch (e) {
        results.push({ protocolError: String(e.message ?? e) });
      }
    }
    return { tools, results, protocolVersion: transport.protocolVersion ?? null };
  } catch (e) {
    return { error: String(e.message ?? e) };
  } finally {
    await client.close().catch(() => {});
  }
}

let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', async () => {
  process.stdout.write(JSON.stringify(await main(JSON.parse(input))));
});
