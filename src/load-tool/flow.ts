/**
 * What one engine holds per allocation (a Flow: its client socket, TURN session, relay address and peer)
 * and per peer socket (a Peer). Plain classes with every field set in the constructor, so the hot path
 * sees one shape.
 */
import type { Socket } from 'node:dgram';
import { JitterEstimator } from './hdr.js';
import type { TurnSession } from './turn-session.js';

/** The channel every allocation binds (channels are per allocation, so one number serves all). */
export const BENCH_CHANNEL = 0x4000;

/**
 * One of the engine's peer sockets; several allocations share it. `socket` is undefined when the
 * native engine owns the socket (native/loadgen.cc): JS then knows only its address and port.
 */
export class Peer {
  readonly socket: Socket | undefined;
  address = '';
  port = 0;
  constructor(socket: Socket | undefined) {
    this.socket = socket;
  }
}

/** One allocation: a connected client socket, its TURN session and, once set up, its relay and peer. */
export class Flow {
  /** Global index over all engines (the payload carries it). */
  readonly index: number;
  socket: Socket;
  session: TurnSession;
  readonly jitter = new JitterEstimator();
  localPort = 0;
  relayAddress = '';
  relayPort = 0;
  peer: Peer | undefined;
  /** Send-indication head (STUN header, XOR-PEER-ADDRESS, DATA header) on the Send/Data path. */
  sendHead: Buffer | undefined;
  allocated = false;
  active = false;
  seq = 0;

  constructor(index: number, socket: Socket, session: TurnSession) {
    this.index = index;
    this.socket = socket;
    this.session = session;
  }
}
