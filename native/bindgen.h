/*
 * bench/binding's native load generator (bindgen.cc): the `BindGen` class the addon exports next to
 * `LoadGen`. bench/binding/client.ts uses it instead of its JS loop when asked (`--client native`, or
 * `auto` with the addon built).
 */
#ifndef TURNPIKE_BINDGEN_H
#define TURNPIKE_BINDGEN_H

#include <napi.h>

namespace turnpike {

/* Adds `BindGen` to the addon's exports. */
Napi::Object InitBindGen(Napi::Env env, Napi::Object exports);

}  // namespace turnpike

#endif
