/* The C ABI, tested from C: behaviour, bad input, callbacks and threads.
 * Built with -Wall -Wextra -Wpedantic -Werror, then again under
 * AddressSanitizer/UBSan and under valgrind. */
#define _POSIX_C_SOURCE 200809L

#include "breakerbox.h"
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cb_breaker *make(cb_config config) {
    cb_breaker *b = NULL;
    cb_status status = cb_new(&config, &b);
    CHECK_EQ(status, CB_STATUS_OK);
    CHECK(b != NULL);
    if (b == NULL) {
        fprintf(stderr, "cb_new failed: %s\n", cb_status_str(status));
        exit(2);
    }
    return b;
}

static cb_config config_with(uint32_t fail_max, uint64_t reset_timeout_ms, uint32_t success_threshold,
                             uint32_t half_open_max_calls) {
    cb_config c = cb_config_default();
    c.fail_max = fail_max;
    c.reset_timeout_ms = reset_timeout_ms;
    c.success_threshold = success_threshold;
    c.half_open_max_calls = half_open_max_calls;
    return c;
}

/* Acquires and records `outcome`; returns cb_record's status, or the
 * rejection. */
static cb_status call(const cb_breaker *b, cb_outcome outcome) {
    cb_permit p;
    cb_status s = cb_try_acquire(b, &p);
    if (s != CB_STATUS_OK) {
        return s;
    }
    return cb_record(b, p, outcome);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000L, (us % 1000000L) * 1000L};
    nanosleep(&ts, NULL);
}

static void sleep_ms(long ms) { sleep_us(ms * 1000L); }

/* Asks for a permit every millisecond until one is given or `max_ms` have
 * passed: the open state's deadline is checked against the library's clock,
 * which may see it a few milliseconds after this process's clock does. */
static cb_status acquire_within(const cb_breaker *b, cb_permit *out, int max_ms) {
    double until = now_ms() + max_ms;
    cb_status s;
    while ((s = cb_try_acquire(b, out)) == CB_STATUS_REJECTED && now_ms() < until) {
        sleep_ms(1);
    }
    return s;
}

/* ------------------------------------------------------------------------ */

static void test_version_and_status_strings(void) {
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", BREAKERBOX_VERSION_MAJOR, BREAKERBOX_VERSION_MINOR,
             BREAKERBOX_VERSION_PATCH);
    CHECK(cb_version() != NULL);
    CHECK(strcmp(cb_version(), expected) == 0);

    const cb_status all[] = {CB_STATUS_OK,    CB_STATUS_REJECTED, CB_STATUS_STALE_PERMIT, CB_STATUS_INVALID_ARGUMENT,
                             CB_STATUS_PANIC, CB_STATUS_STORAGE_ERROR};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *text = cb_status_str(all[i]);
        CHECK(text != NULL && text[0] != '\0');
        CHECK(strcmp(text, "unknown status") != 0);
    }
    CHECK(strcmp(cb_status_str(CB_STATUS_OK), "ok") == 0);
    CHECK(strcmp(cb_status_str((cb_status)99), "unknown status") == 0);
    CHECK(strcmp(cb_status_str((cb_status)0xffffffffu), "unknown status") == 0);
    CHECK_EQ(CB_STATUS_STORAGE_ERROR, 5);
}

static void test_defaults(void) {
    cb_config c = cb_config_default();
    CHECK_EQ(c.fail_max, 5);
    CHECK_EQ(c.reset_timeout_ms, 60000);
    CHECK_EQ(c.success_threshold, 1);
    CHECK_EQ(c.half_open_max_calls, 1);
    CHECK(c.name == NULL);
    CHECK(c.on_state_change == NULL);
    CHECK(c.user_data == NULL);

    cb_breaker *b = make(c);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_fail_counter(b), 0);
    CHECK_EQ(cb_success_counter(b), 0);
    CHECK(strcmp(cb_name(b), "") == 0);
    cb_free(b);
}

static void test_trips_at_fail_max_and_rejects(void) {
    cb_breaker *b = make(config_with(3, 60000, 1, 1));
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 2);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);

    /* A success resets the consecutive count; an ignored call does not. */
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 0);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_IGNORED), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 1);

    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(cb_fail_counter(b), 0);

    cb_permit p = {0x1234};
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(cb_try_acquire(b, &p), CB_STATUS_REJECTED);
    }
    CHECK_EQ(p.bits, 0x1234); /* out-parameter untouched when rejected */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(b);
}

static void test_reset_timeout_admits_one_probe(void) {
    cb_breaker *b = make(config_with(1, 50, 1, 1));
    double tripped_at = now_ms();
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);

    /* Wait for the 50 ms timeout by asking, as a caller would. */
    cb_permit probe;
    cb_status s = acquire_within(b, &probe, 2000);
    double admitted_at = now_ms();
    CHECK_EQ(s, CB_STATUS_OK);
    /* Never before the timeout (whole milliseconds: at least 49 ms later). */
    CHECK(admitted_at - tripped_at >= 49.0);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_probes_in_flight(b), 1);

    /* half_open_max_calls = 1: a single probe at a time. */
    cb_permit other;
    CHECK_EQ(cb_try_acquire(b, &other), CB_STATUS_REJECTED);
    CHECK_EQ(cb_try_acquire(b, &other), CB_STATUS_REJECTED);

    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);

    /* A failed probe re-opens, and the timeout starts again. */
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_REJECTED);
    CHECK_EQ(acquire_within(b, &probe, 2000), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_REJECTED);
    cb_free(b);
}

static void test_success_threshold(void) {
    cb_breaker *b = make(config_with(1, 60000, 3, 1));
    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_success_counter(b), 1);
    /* An ignored probe frees its slot and counts for nothing. */
    CHECK_EQ(call(b, CB_OUTCOME_IGNORED), CB_STATUS_OK);
    CHECK_EQ(cb_success_counter(b), 1);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_success_counter(b), 2);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_success_counter(b), 0);

    /* One failure among the probes re-opens at once. */
    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(b);
}

static void test_forced_states(void) {
    cb_breaker *b = make(config_with(5, 60000, 1, 1));
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 1);

    CHECK_EQ(cb_force_open(b), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_REJECTED);
    CHECK_EQ(cb_force_open(b), CB_STATUS_OK); /* already open: no change */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);

    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    cb_permit probe, other;
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);
    CHECK_EQ(cb_try_acquire(b, &other), CB_STATUS_REJECTED);

    CHECK_EQ(cb_force_close(b), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_fail_counter(b), 0);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 2);
    /* Closing a closed breaker clears its failure count. */
    CHECK_EQ(cb_force_close(b), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 0);
    cb_free(b);
}

static void test_setters(void) {
    cb_breaker *b = make(config_with(5, 60000, 5, 1));
    /* Probe slots are not reclaimed during this test, however slow the run. */
    CHECK_EQ(cb_set_probe_lease_ms(b, 600000), CB_STATUS_OK);

    /* Lowering fail_max to the current count trips at once. */
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_set_fail_max(b, 3), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_set_fail_max(b, 2), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);

    /* A 60 s timeout cut to zero: the next calls get a probe. */
    cb_permit probe;
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_REJECTED);
    CHECK_EQ(cb_set_reset_timeout_ms(b, 0), CB_STATUS_OK);
    CHECK_EQ(acquire_within(b, &probe, 2000), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);

    /* More probe slots admit more probes at once. */
    cb_permit p2, p3;
    CHECK_EQ(cb_try_acquire(b, &p2), CB_STATUS_REJECTED);
    CHECK_EQ(cb_set_half_open_max_calls(b, 2), CB_STATUS_OK);
    CHECK_EQ(cb_try_acquire(b, &p2), CB_STATUS_OK);
    CHECK_EQ(cb_try_acquire(b, &p3), CB_STATUS_REJECTED);
    CHECK_EQ(cb_probes_in_flight(b), 2);

    /* Lowering success_threshold to the current count closes at once. */
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, p2, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_success_counter(b), 2);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_set_success_threshold(b, 2), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);

    /* Out-of-range values are refused and change nothing. */
    CHECK_EQ(cb_set_fail_max(b, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_success_threshold(b, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_success_threshold(b, 65536), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_half_open_max_calls(b, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_half_open_max_calls(b, 65536), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_probe_lease_ms(b, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_fail_max(b, 65536), CB_STATUS_OK); /* fail_max goes up to UINT32_MAX */
    CHECK_EQ(cb_set_fail_max(b, 2), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED); /* still fail_max 2, not 0 */
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(b);
}

static void test_stale_and_double_records(void) {
    cb_breaker *b = make(config_with(2, 60000, 2, 1));

    /* A probe recorded twice (half_open_max_calls = 1): stale, no change. */
    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    cb_permit probe;
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_success_counter(b), 1);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_STALE_PERMIT);
    CHECK_EQ(cb_success_counter(b), 1);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_FAILURE), CB_STATUS_STALE_PERMIT);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_IGNORED), CB_STATUS_STALE_PERMIT);
    CHECK_EQ(cb_probes_in_flight(b), 0);

    /* A probe that re-opened the breaker, recorded again: stale. */
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_STALE_PERMIT);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);

    /* A permit from an earlier episode: stale, and it changes nothing. */
    CHECK_EQ(cb_force_close(b), CB_STATUS_OK);
    cb_permit old;
    CHECK_EQ(cb_try_acquire(b, &old), CB_STATUS_OK);
    CHECK_EQ(cb_force_open(b), CB_STATUS_OK);
    CHECK_EQ(cb_force_close(b), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, old, CB_OUTCOME_FAILURE), CB_STATUS_STALE_PERMIT);
    CHECK_EQ(cb_fail_counter(b), 0);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);

    /* A closed-state permit recorded twice across a transition: stale. */
    cb_permit first;
    CHECK_EQ(cb_try_acquire(b, &first), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, first, CB_OUTCOME_FAILURE), CB_STATUS_OK); /* trips (fail_max 2) */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(cb_record(b, first, CB_OUTCOME_FAILURE), CB_STATUS_STALE_PERMIT);
    cb_free(b);
}

/* Everything a state-change callback sees. */
#define MAX_EVENTS 16
typedef struct {
    atomic_int calls;
    const cb_breaker *expected;
    cb_state from[MAX_EVENTS];
    cb_state to[MAX_EVENTS];
    cb_state inside[MAX_EVENTS];
    int handle_ok[MAX_EVENTS];
    int name_ok[MAX_EVENTS];
} events;

static void record_event(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    events *ev = user_data;
    int i = atomic_fetch_add(&ev->calls, 1);
    if (i < MAX_EVENTS) {
        ev->from[i] = from;
        ev->to[i] = to;
        ev->inside[i] = cb_current_state(breaker);
        ev->handle_ok[i] = ev->expected == NULL || breaker == ev->expected;
        ev->name_ok[i] = strcmp(cb_name(breaker), "payments") == 0;
    }
}

static void test_callback_once_per_transition(void) {
    events ev;
    memset(&ev, 0, sizeof ev);
    atomic_init(&ev.calls, 0);
    cb_config c = config_with(2, 50, 1, 1);
    /* The name is copied: a buffer freed right after cb_new is fine. */
    char *name = malloc(16);
    strcpy(name, "payments");
    c.name = name;
    c.on_state_change = record_event;
    c.user_data = &ev;
    cb_breaker *b = make(c);
    memset(name, 'x', 8);
    free(name);
    ev.expected = b;
    CHECK(strcmp(cb_name(b), "payments") == 0);

    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(atomic_load(&ev.calls), 0);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK); /* trips */
    CHECK_EQ(atomic_load(&ev.calls), 1);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_REJECTED);
    CHECK_EQ(cb_force_open(b), CB_STATUS_OK); /* no change: no callback */
    CHECK_EQ(atomic_load(&ev.calls), 1);

    cb_permit probe;
    CHECK_EQ(acquire_within(b, &probe, 2000), CB_STATUS_OK); /* open -> half-open */
    CHECK_EQ(atomic_load(&ev.calls), 2);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK); /* half-open -> closed */
    CHECK_EQ(atomic_load(&ev.calls), 3);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_STALE_PERMIT);
    CHECK_EQ(cb_force_close(b), CB_STATUS_OK); /* already closed */
    CHECK_EQ(atomic_load(&ev.calls), 3);
    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    CHECK_EQ(cb_set_success_threshold(b, 1), CB_STATUS_OK);
    CHECK_EQ(atomic_load(&ev.calls), 4);
    CHECK_EQ(cb_force_open(b), CB_STATUS_OK);
    CHECK_EQ(atomic_load(&ev.calls), 5);

    const cb_state from[] = {CB_STATE_CLOSED, CB_STATE_OPEN, CB_STATE_HALF_OPEN, CB_STATE_CLOSED, CB_STATE_HALF_OPEN};
    const cb_state to[] = {CB_STATE_OPEN, CB_STATE_HALF_OPEN, CB_STATE_CLOSED, CB_STATE_HALF_OPEN, CB_STATE_OPEN};
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(ev.from[i], from[i]);
        CHECK_EQ(ev.to[i], to[i]);
        CHECK_EQ(ev.inside[i], to[i]); /* the new state is visible inside */
        CHECK(ev.handle_ok[i]);        /* the caller's own handle */
        CHECK(ev.name_ok[i]);
    }
    cb_free(b);
}

static void test_bad_input(void) {
    cb_breaker *const sentinel = (cb_breaker *)(uintptr_t)0x10;
    cb_breaker *out = sentinel;
    cb_config c = cb_config_default();

    /* cb_new: NULLs, zero and too-large thresholds, invalid UTF-8. */
    CHECK_EQ(cb_new(NULL, &out), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_new(&c, NULL), CB_STATUS_INVALID_ARGUMENT);
    c.fail_max = 0;
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    c = cb_config_default();
    c.success_threshold = 0;
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    c = cb_config_default();
    c.half_open_max_calls = 0;
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    c = cb_config_default();
    c.half_open_max_calls = 70000;
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    c = cb_config_default();
    c.success_threshold = 70000;
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    c = cb_config_default();
    c.name = "bad \xff\xfe name";
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    c.name = "\xc3\x28";
    CHECK_EQ(cb_new(&c, &out), CB_STATUS_INVALID_ARGUMENT);
    CHECK(out == sentinel); /* written only on success */

    /* Every function with a NULL breaker. */
    cb_permit p = {42};
    CHECK_EQ(cb_try_acquire(NULL, &p), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(p.bits, 42);
    CHECK_EQ(cb_record(NULL, p, CB_OUTCOME_SUCCESS), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_current_state(NULL), CB_STATE_OPEN);
    CHECK_EQ(cb_fail_counter(NULL), 0);
    CHECK_EQ(cb_success_counter(NULL), 0);
    CHECK_EQ(cb_probes_in_flight(NULL), 0);
    CHECK_EQ(cb_force_open(NULL), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_force_half_open(NULL), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_force_close(NULL), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_fail_max(NULL, 3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_reset_timeout_ms(NULL, 3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_success_threshold(NULL, 3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_half_open_max_calls(NULL, 3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_set_probe_lease_ms(NULL, 3), CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_name(NULL) != NULL && strcmp(cb_name(NULL), "") == 0);
    cb_free(NULL);

    c = cb_config_default();
    c.fail_max = 1;
    cb_breaker *b = make(c);
    cb_breaker *other = make(c);
    CHECK_EQ(cb_try_acquire(b, NULL), CB_STATUS_INVALID_ARGUMENT);

    /* Out-of-range outcomes: refused, the permit still good afterwards. */
    CHECK_EQ(cb_try_acquire(b, &p), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, p, (cb_outcome)7), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_record(b, p, (cb_outcome)3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_record(b, p, (cb_outcome)0xffffffffu), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);

    /* Forged bits, and a permit from another breaker. */
    const uint64_t forged[] = {0, 0xdeadbeefdeadbeefull, UINT64_MAX, p.bits ^ (1ull << 40), p.bits | (1ull << 25),
                               p.bits | 3u};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        cb_permit f = {forged[i]};
        CHECK_EQ(cb_record(b, f, CB_OUTCOME_FAILURE), CB_STATUS_INVALID_ARGUMENT);
    }
    CHECK_EQ(cb_record(other, p, CB_OUTCOME_FAILURE), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_current_state(other), CB_STATE_CLOSED);

    CHECK_EQ(cb_record(b, p, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(other);
    cb_free(b);
}

/* Every edit of a permit's bits is refused, whatever field the bits hold:
 * a closed permit must not become a probe, nor move to another episode. */
static void test_edited_permits(void) {
    cb_config c = cb_config_default();
    c.fail_max = 1;
    c.half_open_max_calls = 2;
    cb_breaker *b = make(c);
    cb_permit closed, probe;
    CHECK_EQ(cb_try_acquire(b, &closed), CB_STATUS_OK);
    for (int bit = 0; bit < 64; bit++) {
        cb_permit edited = {closed.bits ^ (1ull << bit)};
        CHECK_EQ(cb_record(b, edited, CB_OUTCOME_FAILURE), CB_STATUS_INVALID_ARGUMENT);
        CHECK_EQ(cb_record(b, edited, CB_OUTCOME_SUCCESS), CB_STATUS_INVALID_ARGUMENT);
    }
    /* Two low bits at once (the kind of a permit, in today's layout). */
    cb_permit as_probe = {closed.bits ^ 3u};
    CHECK_EQ(cb_record(b, as_probe, CB_OUTCOME_SUCCESS), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_fail_counter(b), 0);

    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);
    for (int bit = 0; bit < 64; bit++) {
        cb_permit edited = {probe.bits ^ (1ull << bit)};
        CHECK_EQ(cb_record(b, edited, CB_OUTCOME_SUCCESS), CB_STATUS_INVALID_ARGUMENT);
    }
    /* An edited permit changed nothing: the probe is still in flight. */
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_probes_in_flight(b), 1);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    /* The closed permit, from an ended episode, is stale, not invalid. */
    CHECK_EQ(cb_record(b, closed, CB_OUTCOME_FAILURE), CB_STATUS_STALE_PERMIT);
    cb_free(b);
}

/* A callback that forces the opposite state on every transition: the
 * transitions it causes are reported after it returns, one after another,
 * never nested, so the stack stays flat however long it goes on. */
#define PINGPONG_TRANSITIONS 20000

typedef struct {
    int calls;
    int depth;
    int max_depth;
    int out_of_order;
    cb_state expect_from;
    const cb_breaker *partner; /* NULL: force this breaker itself */
    int *shared_depth;         /* depth across both breakers of a pair */
    int *shared_max_depth;
} pingpong_t;

static void force_opposite(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    pingpong_t *pp = user_data;
    int *depth = pp->shared_depth ? pp->shared_depth : &pp->depth;
    int *max_depth = pp->shared_max_depth ? pp->shared_max_depth : &pp->max_depth;
    if (++*depth > *max_depth) {
        *max_depth = *depth;
    }
    if (from != pp->expect_from) {
        pp->out_of_order++;
    }
    pp->expect_from = to;
    if (++pp->calls < PINGPONG_TRANSITIONS) {
        const cb_breaker *target = pp->partner ? pp->partner : breaker;
        int open = cb_current_state(target) == CB_STATE_OPEN;
        CHECK_EQ(open ? cb_force_close(target) : cb_force_open(target), CB_STATUS_OK);
    }
    --*depth;
}

static void test_reentrant_callback_does_not_nest(void) {
    pingpong_t pp = {0, 0, 0, 0, CB_STATE_CLOSED, NULL, NULL, NULL};
    cb_config c = cb_config_default();
    c.fail_max = 1;
    c.on_state_change = force_opposite;
    c.user_data = &pp;
    cb_breaker *b = make(c);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK); /* trips: the first of them */
    CHECK_EQ(pp.calls, PINGPONG_TRANSITIONS);
    CHECK_EQ(pp.max_depth, 1);
    CHECK_EQ(pp.out_of_order, 0);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED); /* an even number of changes */
    cb_free(b);

    /* Two breakers whose callbacks force each other: at most one callback
     * of each on the stack. */
    int depth = 0, max_depth = 0;
    pingpong_t pa = {0, 0, 0, 0, CB_STATE_CLOSED, NULL, &depth, &max_depth};
    pingpong_t pb = pa;
    c.user_data = &pa;
    cb_breaker *a = make(c);
    c.user_data = &pb;
    cb_breaker *z = make(c);
    pa.partner = z;
    pb.partner = a;
    CHECK_EQ(cb_force_open(a), CB_STATUS_OK);
    CHECK(max_depth <= 2);
    CHECK_EQ(pa.calls, PINGPONG_TRANSITIONS);
    CHECK_EQ(pa.out_of_order + pb.out_of_order, 0);
    cb_free(a);
    cb_free(z);
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 8
#define ROUNDS 1000
#define PROBE_LIMIT 3

typedef struct {
    const cb_breaker *b;
    atomic_int in_flight;
    atomic_int max_in_flight;
    atomic_long admitted;
    atomic_long successes;
    atomic_long bad_records;
    pthread_barrier_t start;
} hammer;

static void *hammer_half_open(void *arg) {
    hammer *h = arg;
    pthread_barrier_wait(&h->start);
    for (int i = 0; i < ROUNDS; i++) {
        cb_permit p;
        if (cb_try_acquire(h->b, &p) != CB_STATUS_OK) {
            continue;
        }
        int now = atomic_fetch_add(&h->in_flight, 1) + 1;
        int seen = atomic_load(&h->max_in_flight);
        while (now > seen && !atomic_compare_exchange_weak(&h->max_in_flight, &seen, now)) {
        }
        atomic_fetch_add(&h->admitted, 1);
        sleep_us(20); /* hold the probe so that others race for the slots */
        atomic_fetch_sub(&h->in_flight, 1);
        cb_outcome outcome = (i % 2 == 0) ? CB_OUTCOME_SUCCESS : CB_OUTCOME_IGNORED;
        if (cb_record(h->b, p, outcome) != CB_STATUS_OK) {
            atomic_fetch_add(&h->bad_records, 1);
        } else if (outcome == CB_OUTCOME_SUCCESS) {
            atomic_fetch_add(&h->successes, 1);
        }
    }
    return NULL;
}

static void test_threads_half_open_admits_at_most_the_limit(void) {
    /* success_threshold above what the run can reach keeps it half-open;
     * a long probe lease keeps slots from being reclaimed under valgrind. */
    cb_breaker *b = make(config_with(5, 60000, 65535, PROBE_LIMIT));
    CHECK_EQ(cb_set_probe_lease_ms(b, 600000), CB_STATUS_OK);
    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);

    hammer h;
    h.b = b;
    atomic_init(&h.in_flight, 0);
    atomic_init(&h.max_in_flight, 0);
    atomic_init(&h.admitted, 0);
    atomic_init(&h.successes, 0);
    atomic_init(&h.bad_records, 0);
    pthread_barrier_init(&h.start, NULL, THREADS);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_create(&threads[i], NULL, hammer_half_open, &h), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_barrier_destroy(&h.start);
    printf("  half-open: %ld admitted, max %d at once (limit %d)\n", atomic_load(&h.admitted),
           atomic_load(&h.max_in_flight), PROBE_LIMIT);
    CHECK(atomic_load(&h.max_in_flight) <= PROBE_LIMIT);
    CHECK(atomic_load(&h.max_in_flight) >= 2); /* the probes did overlap */
    CHECK(atomic_load(&h.admitted) > 0);
    CHECK_EQ(atomic_load(&h.bad_records), 0);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_probes_in_flight(b), 0);
    CHECK_EQ(cb_success_counter(b), atomic_load(&h.successes));
    cb_free(b);
}

typedef struct {
    const cb_breaker *b;
    atomic_long recorded;
    pthread_barrier_t start;
} tripper;

static atomic_int trips;

static void count_trips(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    (void)user_data;
    if (from == CB_STATE_CLOSED && to == CB_STATE_OPEN && cb_current_state(breaker) == CB_STATE_OPEN) {
        atomic_fetch_add(&trips, 1);
    }
}

static void *fail_until_open(void *arg) {
    tripper *t = arg;
    pthread_barrier_wait(&t->start);
    for (int i = 0; i < ROUNDS; i++) {
        if (call(t->b, CB_OUTCOME_FAILURE) == CB_STATUS_OK) {
            atomic_fetch_add(&t->recorded, 1);
        }
    }
    return NULL;
}

static void test_threads_trip_reported_once(void) {
    atomic_init(&trips, 0);
    cb_config c = config_with(100, 600000, 1, 1);
    c.on_state_change = count_trips;
    cb_breaker *b = make(c);
    tripper t;
    t.b = b;
    atomic_init(&t.recorded, 0);
    pthread_barrier_init(&t.start, NULL, THREADS);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_create(&threads[i], NULL, fail_until_open, &t), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_barrier_destroy(&t.start);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(atomic_load(&trips), 1);
    /* Exactly fail_max failures counted; every later record was stale. */
    CHECK_EQ(atomic_load(&t.recorded), 100);
    cb_free(b);
}

/* Half-open decided by the failure rate over the permitted probes: four
 * probes in all, re-opening when half or more failed. */
static void test_half_open_failure_rate_rule(void) {
    cb_config c = config_with(1, 60000, 1, 4);
    cb_builder *builder = NULL;
    CHECK_EQ(cb_builder_new(&c, &builder), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_half_open_rule(NULL, CB_HALF_OPEN_RULE_FAILURE_RATE), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_half_open_rule(builder, (cb_half_open_rule)7), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_half_open_rule(builder, CB_HALF_OPEN_RULE_FAILURE_RATE), CB_STATUS_OK);
    cb_breaker *b = NULL;
    CHECK_EQ(cb_builder_build(builder, &b), CB_STATUS_OK);
    if (b == NULL) {
        cb_builder_free(builder);
        return;
    }

    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    cb_permit p[4], extra;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(cb_try_acquire(b, &p[i]), CB_STATUS_OK);
    }
    CHECK_EQ(cb_record(b, p[0], CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN); /* a failure does not re-open at once */
    CHECK_EQ(cb_try_acquire(b, &extra), CB_STATUS_REJECTED); /* its permit stays spent */
    CHECK_EQ(cb_record(b, p[1], CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, p[2], CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_success_counter(b), 2);
    CHECK_EQ(cb_record(b, p[3], CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED); /* 1 of 4 failed */

    CHECK_EQ(cb_force_half_open(b), CB_STATUS_OK);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(cb_try_acquire(b, &p[i]), CB_STATUS_OK);
    }
    CHECK_EQ(cb_record(b, p[0], CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, p[1], CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_record(b, p[2], CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
    CHECK_EQ(cb_record(b, p[3], CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN); /* 2 of 4 failed: 50% */
    cb_free(b);

    /* The rule's limits are checked when the breaker is built. */
    cb_config too_many = config_with(1, 60000, 1, 32);
    cb_builder *bad = NULL;
    CHECK_EQ(cb_builder_new(&too_many, &bad), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_half_open_rule(bad, CB_HALF_OPEN_RULE_FAILURE_RATE), CB_STATUS_OK);
    cb_breaker *none = NULL;
    CHECK_EQ(cb_builder_build(bad, &none), CB_STATUS_INVALID_ARGUMENT);
    CHECK(none == NULL);
    CHECK_EQ(cb_builder_set_half_open_rule(bad, CB_HALF_OPEN_RULE_SUCCESSES), CB_STATUS_OK);
    CHECK_EQ(cb_builder_build(bad, &none), CB_STATUS_OK);
    cb_free(none);
    cb_builder_free(bad);
    cb_builder_free(builder);
}

int main(void) {
    printf("breakerbox %s: C tests\n", cb_version());
    run_test("version and status strings", test_version_and_status_strings);
    run_test("defaults", test_defaults);
    run_test("trips at fail_max and rejects", test_trips_at_fail_max_and_rejects);
    run_test("reset timeout admits one probe", test_reset_timeout_admits_one_probe);
    run_test("success threshold", test_success_threshold);
    run_test("forced states", test_forced_states);
    run_test("setters", test_setters);
    run_test("stale and double records", test_stale_and_double_records);
    run_test("callback once per transition", test_callback_once_per_transition);
    run_test("bad input", test_bad_input);
    run_test("edited permits", test_edited_permits);
    run_test("a re-entrant callback does not nest", test_reentrant_callback_does_not_nest);
    run_test("threads: half-open admits at most the limit", test_threads_half_open_admits_at_most_the_limit);
    run_test("threads: a trip is reported once", test_threads_trip_reported_once);
    run_test("half-open decided by the failure rate", test_half_open_failure_rate_rule);
    printf("C tests: %d/%d passed (%d checks, %d failed)\n", tests_run - tests_failed, tests_run, checks_run,
           checks_failed);
    if (tests_failed != 0) {
        printf("C tests: FAIL\n");
        return 1;
    }
    printf("C tests: PASS\n");
    return 0;
}
