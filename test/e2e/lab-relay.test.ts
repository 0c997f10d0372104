/**
 * The NAT lab (issue 12), relays and their transports: TURN disabled is caught (4x), UDP blocked
 * (6: TURN over TCP and over TLS), REST credentials fetched as an application does (7), audio RTP
 * through the relay (8). See test/fixtures/lab/.
 */
import t from 'tap';
import { testScenarios } from '../fixtures/lab/assert.js';

testScenarios(t, ['4x-turn-disabled', '6-udp-blocked-tcp', '6-udp-blocked-tls', '7-rest', '8-media']);
