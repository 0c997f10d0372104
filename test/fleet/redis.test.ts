import t from 'tap';
import { defaults } from '../../src/config/schema.js';
import { databaseOf, defaultFleetAddress, nodeIdOf } from '../../src/fleet/fleet.js';
import { reconnectDelayMs } from '../../src/fleet/redis.js';

t.test('reconnects back off', async (t) => {
  t.equal(
    reconnectDelayMs(0, () => 0.5),
    100,
  );
  t.equal(
    reconnectDelayMs(3, () => 0.5),
    800,
  );
  t.equal(
    reconnectDelayMs(30, () => 0.5),
    10_000,
    'capped at 10 s',
  );
  t.equal(
    reconnectDelayMs(0, () => 0),
    80,
    'jitter -20%',
  );
  t.equal(
    reconnectDelayMs(0, () => 1),
    120,
    'jitter +20%',
  );
});

t.test('fleet identity from the configuration', async (t) => {
  const config = defaults();
  t.equal(databaseOf('redis://h:6379'), 0);
  t.equal(databaseOf('rediss://u:p@h:6380/3'), 3);
  t.equal(nodeIdOf({ ...config, nodeId: 'eu-1' }), 'eu-1');
  t.match(nodeIdOf(config), /^[A-Za-z0-9._-]{1,64}$/, 'the host name, cleaned');
  t.equal(
    defaultFleetAddress({ ...config, externalIps: ['198.51.100.1/10.0.0.1'] }, ['10.0.0.1'], ['10.0.0.1']),
    '198.51.100.1',
  );
  t.equal(defaultFleetAddress(config, ['0.0.0.0', '192.0.2.7'], ['192.0.2.7']), '192.0.2.7');
  t.equal(defaultFleetAddress(config, ['0.0.0.0'], ['192.0.2.8']), '192.0.2.8');
});
