// Test-only MongoDB wire-protocol server (in memory) for the storage driver tests.
// Usage: node server.mjs PORT   — prints "listening <uri>" once ready; exits on SIGTERM/SIGINT.
import { congodb } from '@push.rocks/smartmongo';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
const server = new congodb.CongoServer({ port, host: '127.0.0.1', storage: 'memory' });
await server.start();
console.log(`listening ${server.getConnectionUri()}`);
const shutdown = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
