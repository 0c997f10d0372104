/**
 * A UDP listening address served by the native data plane: one SO_REUSEPORT socket per thread,
 * read by the threads, and a control socket read on this thread (native/steer.h). TURN requests
 * (from the control socket) and what the threads do not handle themselves (anything unexpected)
 * come up here and go to the core with the endpoint of the thread that owns the client's 5-tuple,
 * so answers leave through that thread's socket and the allocation is installed on that thread.
 */
import type { StunCore } from '../../core/stun-core.js';
import { BindError } from '../../errors.js';
import type { UdpListenerOptions } from '../udp-listener.js';
import { type NativeDataPlane, NativeEndpoint, type UpcallTarget } from './data-plane.js';

export class NativeUdpListener implements UpcallTarget {
  readonly options: UdpListenerOptions;
  private readonly core: StunCore;
  private readonly plane: NativeDataPlane;
  private endpoints: NativeEndpoint[] = [];
  private port = 0;

  constructor(options: UdpListenerOptions, core: StunCore, plane: NativeDataPlane) {
    this.options = options;
    this.core = core;
    this.plane = plane;
  }

  /** Binds the threads' sockets. Rejects with a BindError naming the address when it cannot. */
  async start(): Promise<void> {
    const { address, port, sockBufSize } = this.options;
    let index: number;
    try {
      [index, this.port] = this.plane.openListener(address, port, sockBufSize, this);
    } catch (err) {
      throw new BindError(`cannot bind UDP ${address}:${port}: ${(err as Error).message}`, { cause: err });
    }
    for (let t = 0; t < this.plane.threads; t++)
      this.endpoints.push(new NativeEndpoint(this.plane, index, t));
  }

  deliver(thread: number, buf: Buffer, address: string, port: number): void {
    const endpoint = this.endpoints[thread];
    if (endpoint !== undefined) this.core.receive(buf, address, port, endpoint);
  }

  /** The bound address and port (port 0 in the options picks a free one). */
  address(): { address: string; port: number } {
    return { address: this.options.address, port: this.port };
  }

  /** The sockets belong to the threads and close with the data plane. */
  async close(): Promise<void> {
    this.endpoints = [];
  }
}
