// graphql-http's GraphQL-over-HTTP server audits against the URL given as the only argument;
// prints one JSON array of results ({id, name, status, reason, httpStatus}) on stdout.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  results.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === 'ok' ? null : result.reason,
    httpStatus: result.status === 'ok' ? null : result.response.status,
  });
}
process.stdout.write(JSON.stringify(results));
