/*
 * Parts of the ttm ABI shared by the real and the host implementation: the thread-local error
 * record (and the parser of TT-NN's TT_FATAL / TT_THROW text), live-handle counters, and the
 * fault-injection hook.
 *
 * Error strings live in fixed thread-local buffers (no allocation, nothing to free at thread
 * exit); over-long texts are truncated and end with "...".
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "ttm_internal.h"

#define RAW_CAP 8192
#define MSG_CAP 4096
#define COND_CAP 1024
#define FILE_CAP 512
#define KIND_CAP 48
#define FUNC_CAP 64
#define BT_CAP 4096

typedef struct {
    ttm_error rec;
    char raw[RAW_CAP];
    char message[MSG_CAP];
    char condition[COND_CAP];
    char file[FILE_CAP];
    char kind[KIND_CAP];
    char function[FUNC_CAP];
    char backtrace[BT_CAP];
    char current[FUNC_CAP];
} error_state;

static _Thread_local error_state g_err;

typedef struct {
    int armed;
    char function[FUNC_CAP]; /* "" = any */
    char what[RAW_CAP];
    char taken[RAW_CAP];
} injection_state;

static _Thread_local injection_state g_inj;

static atomic_uint_fast64_t g_live_devices;
static atomic_uint_fast64_t g_live_tensors;

/* Copies at most n bytes of src (NUL-terminated or not) into dst[cap], truncating with "...". */
static void copy_n(char* dst, size_t cap, const char* src, size_t n) {
    if (cap == 0) return;
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    if (n < cap) {
        memcpy(dst, src, n);
        dst[n] = '\0';
        return;
    }
    memcpy(dst, src, cap - 1);
    dst[cap - 1] = '\0';
    if (cap > 4) memcpy(dst + cap - 4, "...", 3);
}

static void copy_str(char* dst, size_t cap, const char* src) { copy_n(dst, cap, src, src ? strlen(src) : 0); }

static void reset_record(void) {
    error_state* e = &g_err;
    e->raw[0] = e->message[0] = e->condition[0] = e->file[0] = e->kind[0] = e->backtrace[0] = '\0';
    copy_str(e->function, FUNC_CAP, e->current);
    e->rec.status = TTM_OK;
    e->rec.function = e->function;
    e->rec.kind = e->kind;
    e->rec.file = e->file;
    e->rec.line = 0;
    e->rec.condition = e->condition;
    e->rec.message = e->message;
    e->rec.backtrace = e->backtrace;
    e->rec.raw = e->raw;
}

void ttm__begin(const char* function) {
    copy_str(g_err.current, FUNC_CAP, function);
    reset_record();
}

const ttm_error* ttm_last_error(void) {
    if (g_err.rec.function == NULL) reset_record();
    return &g_err.rec;
}

void ttm_clear_error(void) {
    g_err.current[0] = '\0';
    reset_record();
}

ttm_status ttm__fail_shim(ttm_status status, const char* fmt, ...) {
    reset_record();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err.message, MSG_CAP, fmt, ap);
    va_end(ap);
    copy_str(g_err.raw, RAW_CAP, g_err.message);
    copy_str(g_err.kind, KIND_CAP, "shim");
    g_err.rec.status = status;
    return status;
}

/* Trims trailing newlines and spaces of s[0..*n). */
static void rtrim(const char* s, size_t* n) {
    while (*n > 0 && (s[*n - 1] == '\n' || s[*n - 1] == '\r' || s[*n - 1] == ' ')) (*n)--;
}

/*
 * Parses "<file>:<line>: <condition>" (the rest of the first line after "<KIND> @ ").
 * The file ends at the first ":<digits>: " so that conditions containing ':' survive.
 */
static int parse_location(const char* s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ':') continue;
        size_t j = i + 1;
        unsigned long line = 0;
        while (j < n && isdigit((unsigned char)s[j])) {
            line = line * 10 + (unsigned long)(s[j] - '0');
            j++;
        }
        if (j == i + 1 || j >= n || s[j] != ':') continue;
        copy_n(g_err.file, FILE_CAP, s, i);
        g_err.rec.line = (uint32_t)line;
        j++;
        if (j < n && s[j] == ' ') j++;
        size_t clen = n - j;
        rtrim(s + j, &clen);
        copy_n(g_err.condition, COND_CAP, s + j, clen);
        return 1;
    }
    return 0;
}

ttm_status ttm__fail_what(const char* what, const char* fallback_kind, ttm_status fallback_status) {
    static const char* const kinds[] = {"TT_FATAL", "TT_THROW", "TT_ASSERT"};
    static const ttm_status statuses[] = {TTM_E_TT_FATAL, TTM_E_TT_THROW, TTM_E_TT_FATAL};
    reset_record();
    if (what == NULL) what = "";
    copy_str(g_err.raw, RAW_CAP, what);

    const char* nl = strchr(what, '\n');
    size_t first_len = nl ? (size_t)(nl - what) : strlen(what);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t kl = strlen(kinds[k]);
        if (first_len < kl + 3 || strncmp(what, kinds[k], kl) != 0 || strncmp(what + kl, " @ ", 3) != 0) continue;
        if (!parse_location(what + kl + 3, first_len - kl - 3)) continue;
        copy_str(g_err.kind, KIND_CAP, kinds[k]);
        g_err.rec.status = statuses[k];

        const char* info = strstr(what, "\ninfo:\n");
        const char* bt = strstr(what, "\nbacktrace:");
        if (info != NULL && (bt == NULL || info < bt)) {
            const char* m = info + 7;
            size_t mlen = bt ? (size_t)(bt - m) : strlen(m);
            rtrim(m, &mlen);
            copy_n(g_err.message, MSG_CAP, m, mlen);
        } else {
            /* No info block: the condition is all there is to say. */
            copy_str(g_err.message, MSG_CAP, g_err.condition);
        }
        if (bt != NULL) {
            const char* b = bt + strlen("\nbacktrace:");
            while (*b == '\n') b++;
            size_t blen = strlen(b);
            rtrim(b, &blen);
            copy_n(g_err.backtrace, BT_CAP, b, blen);
        }
        return g_err.rec.status;
    }

    size_t mlen = strlen(what);
    rtrim(what, &mlen);
    copy_n(g_err.message, MSG_CAP, what, mlen);
    copy_str(g_err.kind, KIND_CAP, fallback_kind ? fallback_kind : "std::exception");
    g_err.rec.status = fallback_status;
    return fallback_status;
}

ttm_status ttm__fail_tt(const char* kind, const char* file, unsigned line, const char* condition,
                        const char* fmt, ...) {
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char text[RAW_CAP];
    snprintf(text, sizeof text, "%s @ %s:%u: %s\ninfo:\n%s\n", kind, file, line, condition, msg);
    return ttm__fail_what(text, "std::runtime_error", TTM_E_CXX);
}

ttm_status ttm_debug_inject_error(const char* function, const char* what) {
    ttm__begin("ttm_debug_inject_error");
    if (what == NULL) {
        g_inj.armed = 0;
        return TTM_OK;
    }
    copy_str(g_inj.function, FUNC_CAP, function ? function : "");
    copy_str(g_inj.what, RAW_CAP, what);
    g_inj.armed = 1;
    return TTM_OK;
}

const char* ttm__take_injection(const char* function) {
    if (!g_inj.armed) return NULL;
    if (g_inj.function[0] != '\0' && strcmp(g_inj.function, function) != 0) return NULL;
    g_inj.armed = 0;
    copy_str(g_inj.taken, RAW_CAP, g_inj.what);
    return g_inj.taken;
}

void ttm__count(int kind, int delta) {
    atomic_uint_fast64_t* c = kind == 0 ? &g_live_devices : &g_live_tensors;
    if (delta > 0)
        atomic_fetch_add(c, (uint_fast64_t)delta);
    else
        atomic_fetch_sub(c, (uint_fast64_t)(-delta));
}

void ttm_live_handles(uint64_t* devices, uint64_t* tensors) {
    if (devices) *devices = (uint64_t)atomic_load(&g_live_devices);
    if (tensors) *tensors = (uint64_t)atomic_load(&g_live_tensors);
}

ttm_status ttm__copy_out(const char* text, char* buf, size_t cap, size_t* needed) {
    size_t n = strlen(text) + 1;
    if (needed) *needed = n;
    if (buf != NULL && cap > 0) {
        size_t k = n <= cap ? n - 1 : cap - 1;
        memcpy(buf, text, k);
        buf[k] = '\0';
    }
    if (cap < n) return ttm__fail_shim(TTM_E_BUFFER_TOO_SMALL, "buffer of %zu bytes is too small, %zu needed", cap, n);
    return TTM_OK;
}
