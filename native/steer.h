/*
 * turnpike native data plane: which socket of a listening address reads a client's datagram.
 *
 * A UDP listening address is a SO_REUSEPORT group of `threads + 1` sockets, bound in this order:
 * one per worker thread (group index = thread index), then the control socket (index `threads`),
 * which the JS thread reads itself. A classic BPF program attached to the group (unprivileged:
 * SO_ATTACH_REUSEPORT_CBPF) picks the socket of each datagram:
 *  - STUN messages other than Binding requests and Send indications — the TURN requests of the
 *    control plane — go to the control socket, so that they reach JS with no worker thread
 *    between (each crossing is a wake-up of the thread and of JS, which on a busy core are
 *    context switches);
 *  - everything else (ChannelData, Send indications, Binding requests, anything unexpected) goes
 *    to the worker thread steer_thread() names for the source address and port: a client 5-tuple
 *    always lands on one thread, and JS knows which without being told.
 * Where the program cannot be attached, the control socket is not opened and the kernel's own
 * 5-tuple hash spreads every datagram over the threads, which hand up what is not theirs.
 */
#ifndef TURNPIKE_STEER_H
#define TURNPIKE_STEER_H

#include <linux/filter.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51 /* Linux 4.5; older C library headers lack the name */
#endif

namespace turnpike {

/* The worker thread (0..threads-1) of a client transport address; the same function as the BPF
 * program's. `salt` is secret and random per process, so that nobody can choose source ports that
 * all land on one thread. Where the two could differ (an IPv6 datagram with extension headers: the
 * program reads the port at a fixed offset; datagrams a thread read before the program was
 * attached), the thread that reads a client's datagram hands it up, and JS, told steer_thread()'s
 * thread, finds the allocation there and relays it itself: slower, never lost. */
int steer_thread(const sockaddr_storage *from, int threads, uint32_t salt);

/* The program for a listening address of `family` (4 or 6) served by `threads` threads. */
std::vector<sock_filter> steering_program(int family, int threads, uint32_t salt);

/* Attaches the program to the group of `fd` (a member bound last, after the workers' sockets).
 * 0, or the errno of the refusal. */
int attach_steering(int fd, int family, int threads, uint32_t salt);

}  // namespace turnpike
#endif
