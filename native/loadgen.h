/*
 * turnpike-bench's native traffic engine (loadgen.cc): the `LoadGen` class the addon exports next
 * to `DataPlane`. The load tool (src/load-tool/native-engine.ts) sets the allocations up in JS and
 * hands the engine, per allocation, its connected client socket's descriptor and its packet
 * template; the engine owns the peer sockets and runs each measured window on a thread of its own.
 */
#ifndef TURNPIKE_LOADGEN_H
#define TURNPIKE_LOADGEN_H

#include <napi.h>

namespace turnpike {

/* Adds `LoadGen` (and `LOADGEN_COUNTERS`, `LOADGEN_BUCKETS`) to the addon's exports. */
Napi::Object InitLoadGen(Napi::Env env, Napi::Object exports);

}  // namespace turnpike

#endif
