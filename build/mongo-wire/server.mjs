// Test-only MongoDB wire-protocol server for the storage driver tests.
// Usage: node server.mjs PORT [DIR]
//   without DIR: in memory; with DIR: documents kept in files under DIR, so a
//   stopped and restarted server (same DIR) still has them.
// Prints "listening <uri>" once ready; exits on SIGTERM/SIGINT.
import { congodb } from '@push.rocks/smartmongo';

const port = Number(process.argv[2]);
const dir = process.argv[3];
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT [DIR]');
  process.exit(2);
}
const options = dir
  ? { port, host: '127.0.0.1', storage: 'file', storagePath: dir }
  : { port, host: '127.0.0.1', storage: 'memory' };
const server = new congodb.CongoServer(options);
await server.start();
console.log(`listening ${server.getConnectionUri()}`);
const shutdown = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
