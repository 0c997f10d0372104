/*
 * Small helpers shared by the benchmark engines (loadgen.cc, bindgen.cc): the monotonic clock in
 * nanoseconds, the calling thread's CPU time, and big-endian reads and writes of 16/32-bit fields.
 * Callers check lengths before calling the get/put functions.
 */
#ifndef TURNPIKE_BENCHUTIL_H
#define TURNPIKE_BENCHUTIL_H

#include <time.h>

#include <cstdint>

namespace turnpike {
namespace benchutil {

inline int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/* CPU seconds of the calling thread, or -1 when the clock cannot be read. */
inline double thread_cpu_sec() {
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return -1;
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

inline void put16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}

inline void put32(uint8_t *p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

inline uint16_t get16(const uint8_t *p) { return uint16_t((p[0] << 8) | p[1]); }

inline uint32_t get32(const uint8_t *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace benchutil
}  // namespace turnpike
#endif
