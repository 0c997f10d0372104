/**
 * The NAT lab (issue 12), calls across NAT: cone NAT connects directly with STUN alone (2),
 * symmetric NAT defeats STUN (3: ICE fails — the lab is real), TURN over UDP gets through it
 * (4, also Chromium ↔ Firefox), and one side with TURN is enough (5). See test/fixtures/lab/.
 */
import t from 'tap';
import { testScenarios } from '../fixtures/lab/assert.js';

testScenarios(t, [
  '2-cone-stun',
  '3-symmetric-stun',
  '4-symmetric-turn',
  '4f-symmetric-turn-firefox',
  '5-one-turn',
]);
