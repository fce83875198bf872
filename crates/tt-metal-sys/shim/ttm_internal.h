/*
 * Shared by both implementations (host.c and ttm.cpp): the thread-local error record and its
 * parser, process-wide live-handle counters, and the fault-injection hook. Implemented in
 * common.c. Not part of the public ABI.
 */
#ifndef TTM_INTERNAL_H
#define TTM_INTERNAL_H

#include "ttm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Starts an entry point: clears this thread's error record and remembers `function`. */
void ttm__begin(const char* function);

/* Records an argument error detected by the shim (kind "shim"). Returns `status`. */
ttm_status ttm__fail_shim(ttm_status status, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Records an exception's what() text. TT-NN's "<KIND> @ <file>:<line>: <cond>\ninfo:\n<msg>
 * \nbacktrace:\n..." format is parsed into the record's fields and the status follows the kind
 * (TT_FATAL/TT_ASSERT → TTM_E_TT_FATAL, TT_THROW → TTM_E_TT_THROW). Any other text keeps
 * `fallback_kind` (e.g. "std::bad_alloc") and `fallback_status`. Returns the status recorded.
 */
ttm_status ttm__fail_what(const char* what, const char* fallback_kind, ttm_status fallback_status);

/*
 * Formats a TT_FATAL / TT_THROW text exactly as tt_stl's assert does (kind @ file:line: cond,
 * info block, no backtrace) and records it through ttm__fail_what, so the host shim's errors
 * take the same parse path as TT-NN's. Returns the status recorded.
 */
ttm_status ttm__fail_tt(const char* kind, const char* file, unsigned line, const char* condition,
                        const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* If a fault is armed for `function` (or for any function) on this thread, disarms it and
 * returns the armed what() text (valid until the next ttm__ call on this thread). */
const char* ttm__take_injection(const char* function);

/* Live-handle bookkeeping: kind 0 = device, 1 = tensor. */
void ttm__count(int kind, int delta);

/* common.c also defines the public ttm_last_error, ttm_clear_error, ttm_live_handles and
 * ttm_debug_inject_error, which behave the same in both implementations. */

/* (buf, cap, needed) protocol helper for *_describe. */
ttm_status ttm__copy_out(const char* text, char* buf, size_t cap, size_t* needed);

#ifdef __cplusplus
}
#endif

#endif /* TTM_INTERNAL_H */
