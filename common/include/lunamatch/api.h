/*
 * api.h - marks the functions of liblunamatch-client's public API.
 *
 * The client library is built with hidden visibility: only declarations
 * marked LM_API (in client.h and error.h) and the generated code of the
 * public schemas are exported, so internal changes never change its ABI.
 * Everything else in common/ is the internal static library of the services
 * and tools, which is never installed.
 */
#ifndef LUNAMATCH_API_H
#define LUNAMATCH_API_H

#if defined(__GNUC__) || defined(__clang__)
#define LM_API __attribute__((visibility("default")))
#else
#define LM_API
#endif

#endif /* LUNAMATCH_API_H */
