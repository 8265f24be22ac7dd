/* The C ABI's rate windows, slow calls, open-period backoff, modes,
 * retry-after and storage health, tested from C on a manual clock given to
 * cb_builder_set_clock: time moves only when a test advances it, nothing
 * sleeps. Built and run like test_breaker.c (plain, ASan/UBSan, valgrind). */
#include "breakerbox.h"
#include "check.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A clock that moves only when told to; counts how often it is read. */
typedef struct {
    atomic_uint_least64_t now_ms;
    atomic_uint_least64_t reads;
} manual_clock;

static uint64_t manual_now(void *user_data) {
    manual_clock *clock = user_data;
    atomic_fetch_add(&clock->reads, 1);
    return atomic_load(&clock->now_ms);
}

static void advance(manual_clock *clock, uint64_t ms) { atomic_fetch_add(&clock->now_ms, ms); }

static void clock_init(manual_clock *clock) {
    atomic_init(&clock->now_ms, 1000000); /* an arbitrary origin */
    atomic_init(&clock->reads, 0);
}

/* A builder on `clock` with `fail_max` and `reset_timeout_ms`. */
static cb_builder *builder_on(manual_clock *clock, uint32_t fail_max, uint64_t reset_timeout_ms) {
    cb_config c = cb_config_default();
    c.fail_max = fail_max;
    c.reset_timeout_ms = reset_timeout_ms;
    cb_builder *builder = NULL;
    CHECK_EQ(cb_builder_new(&c, &builder), CB_STATUS_OK);
    if (builder == NULL) {
        exit(2);
    }
    CHECK_EQ(cb_builder_set_clock(builder, manual_now, clock), CB_STATUS_OK);
    return builder;
}

/* Builds a breaker and frees the builder. */
static cb_breaker *build(cb_builder *builder) {
    cb_breaker *b = NULL;
    cb_status status = cb_builder_build(builder, &b);
    CHECK_EQ(status, CB_STATUS_OK);
    cb_builder_free(builder);
    if (b == NULL) {
        fprintf(stderr, "cb_builder_build failed: %s\n", cb_status_str(status));
        exit(2);
    }
    return b;
}

static cb_status call(const cb_breaker *b, cb_outcome outcome) {
    cb_permit p;
    cb_status s = cb_try_acquire(b, &p);
    return s != CB_STATUS_OK ? s : cb_record(b, p, outcome);
}

static cb_status timed_call(const cb_breaker *b, cb_outcome outcome, uint64_t elapsed_ms) {
    cb_permit p;
    cb_status s = cb_try_acquire(b, &p);
    return s != CB_STATUS_OK ? s : cb_record_timed(b, p, outcome, elapsed_ms);
}

/* ------------------------------------------------------------------------ */

static void test_count_window_trips_on_rate(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_count_window(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_failure_rate_threshold(builder, 50.0f), CB_STATUS_OK);
    cb_breaker *b = build(builder);

    /* Failures between successes: the consecutive rule (fail_max 5) would
     * never trip on these; the rate does, once 10 calls are in. */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
        CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    }
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_IGNORED), CB_STATUS_OK); /* held by no window */
    CHECK_EQ(cb_window_calls(b), 9);
    CHECK(cb_failure_rate(b) == CB_RATE_NONE); /* 9 calls: below minimum_calls */
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK); /* 5 of 10: 50% */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    /* Every transition starts the window afresh. */
    CHECK_EQ(cb_window_calls(b), 0);
    cb_free(b);

    /* Below the threshold it stays closed, and reports the rate. */
    builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_count_window(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 10), CB_STATUS_OK);
    b = build(builder);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(call(b, i < 4 ? CB_OUTCOME_FAILURE : CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    }
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK(fabsf(cb_failure_rate(b) - 40.0f) < 0.01f);
    CHECK(cb_slow_call_rate(b) == CB_RATE_NONE); /* no slow-call duration set */
    CHECK_EQ(cb_fail_counter(b), 0);             /* the consecutive count is unused */
    cb_free(b);
}

static void test_minimum_calls(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 1, 60000);
    CHECK_EQ(cb_builder_set_time_window_ms(builder, 10000), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 5), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    /* fail_max 1 is unused: 4 failures (100%) stay below minimum_calls. */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    }
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK(cb_failure_rate(b) == CB_RATE_NONE);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(b);
}

static void test_time_window_forgets_old_calls(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_time_window_ms(builder, 1000), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_window_buckets(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 4), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    }
    CHECK_EQ(cb_window_calls(b), 3);
    advance(&clock, 1000); /* ten buckets of 100 ms later: out of the window */
    CHECK_EQ(cb_window_calls(b), 0);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    }
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED); /* 1 of 4; the old 3 are gone */
    CHECK(fabsf(cb_failure_rate(b) - 25.0f) < 0.01f);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK); /* 2 of 5 */
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK); /* 3 of 6: 50% */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(b);
}

static void test_slow_calls_by_recorded_duration(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_count_window(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 4), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_slow_call_duration_ms(builder, 100), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_slow_call_rate_threshold(builder, 50.0f), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    /* Successes all: only their durations can trip it. 100 ms is not
     * longer than the limit; 101 ms is. An untimed record is never slow. */
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(timed_call(b, CB_OUTCOME_SUCCESS, 100), CB_STATUS_OK);
    CHECK_EQ(timed_call(b, CB_OUTCOME_SUCCESS, 101), CB_STATUS_OK);
    CHECK(cb_slow_call_rate(b) == CB_RATE_NONE); /* 3 calls: below minimum_calls */
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(timed_call(b, CB_OUTCOME_SUCCESS, 5000), CB_STATUS_OK); /* 2 slow of 4 */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    cb_free(b);

    /* Or the breaker times the call between acquire and record. */
    builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_count_window(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 2), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_slow_call_duration_ms(builder, 100), CB_STATUS_OK);
    b = build(builder);
    cb_timed_permit t;
    CHECK_EQ(cb_try_acquire_timed(b, &t), CB_STATUS_OK);
    CHECK(t.started_ms != CB_NO_VALUE);
    advance(&clock, 100);
    CHECK_EQ(cb_record_timed_permit(b, t, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK(cb_slow_call_rate(b) == CB_RATE_NONE); /* 1 call: below minimum_calls */
    CHECK_EQ(cb_try_acquire_timed(b, &t), CB_STATUS_OK);
    advance(&clock, 101);
    CHECK_EQ(cb_record_timed_permit(b, t, CB_OUTCOME_SUCCESS), CB_STATUS_OK); /* 1 slow of 2: 50% */
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED); /* the default threshold is 100% */
    CHECK(fabsf(cb_slow_call_rate(b) - 50.0f) < 0.01f);
    CHECK_EQ(cb_try_acquire_timed(b, &t), CB_STATUS_OK);
    advance(&clock, 101);
    CHECK_EQ(cb_record_timed_permit(b, t, CB_OUTCOME_SUCCESS), CB_STATUS_OK); /* 2 slow of 3 */
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    cb_free(b);

    /* Without a slow-call duration the breaker does not read its clock to time a call. */
    builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_count_window(builder, 10), CB_STATUS_OK);
    b = build(builder);
    uint64_t reads = atomic_load(&clock.reads);
    CHECK_EQ(cb_try_acquire_timed(b, &t), CB_STATUS_OK);
    CHECK(t.started_ms == CB_NO_VALUE);
    advance(&clock, 5000);
    CHECK_EQ(cb_record_timed_permit(b, t, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(atomic_load(&clock.reads), reads);
    CHECK_EQ(cb_window_calls(b), 1);
    cb_free(b);
}

/* Trips a fail_max-1 breaker, then lets each open period run out and fails
 * its probe; `expected` are the open periods, each checked to reject until
 * its last millisecond and admit right at its end. */
static void check_open_periods(cb_breaker *b, manual_clock *clock, const uint64_t *expected, int n) {
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
        CHECK_EQ(cb_open_for_ms(b), expected[i]);
        cb_permit probe;
        uint64_t retry = 0;
        CHECK_EQ(cb_try_acquire_retry_after(b, &probe, &retry), CB_STATUS_REJECTED);
        CHECK_EQ(retry, expected[i]);
        advance(clock, expected[i] - 1);
        CHECK_EQ(cb_try_acquire_retry_after(b, &probe, &retry), CB_STATUS_REJECTED);
        CHECK_EQ(retry, 1);
        advance(clock, 1);
        CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);
        CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);
        CHECK_EQ(cb_record(b, probe, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    }
}

static void test_exponential_backoff_grows_to_its_cap(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 1, 100);
    CHECK_EQ(cb_builder_set_open_backoff_exponential(builder, 2.0, 350, CB_JITTER_NONE), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    const uint64_t periods[] = {100, 200, 350, 350};
    check_open_periods(b, &clock, periods, 4);
    /* A close starts over at the reset timeout. */
    CHECK_EQ(cb_force_close(b), CB_STATUS_OK);
    check_open_periods(b, &clock, periods, 1);
    cb_free(b);

    /* Without a backoff, every period is the reset timeout. */
    b = build(builder_on(&clock, 1, 100));
    const uint64_t flat[] = {100, 100, 100};
    check_open_periods(b, &clock, flat, 3);
    cb_free(b);
}

static void test_jittered_backoff_stays_in_range(void) {
    manual_clock clock;
    clock_init(&clock);
    const cb_jitter jitters[] = {CB_JITTER_FULL, CB_JITTER_EQUAL};
    for (int j = 0; j < 2; j++) {
        cb_builder *builder = builder_on(&clock, 1, 400);
        CHECK_EQ(cb_builder_set_open_backoff_exponential(builder, 1.0, 0, jitters[j]), CB_STATUS_OK);
        cb_breaker *b = build(builder);
        uint64_t low = jitters[j] == CB_JITTER_FULL ? 0 : 200, distinct = 0, last = CB_NO_VALUE;
        CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
        for (int i = 0; i < 50; i++) {
            uint64_t period = cb_open_for_ms(b);
            CHECK(period >= low && period <= 400);
            distinct += period != last;
            last = period;
            cb_permit probe;
            if (period > 0) { /* never admitted before the period ends */
                advance(&clock, period - 1);
                CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_REJECTED);
                advance(&clock, 1);
            }
            CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);
            CHECK_EQ(cb_record(b, probe, CB_OUTCOME_FAILURE), CB_STATUS_OK);
        }
        CHECK(distinct > 10); /* jittered, not fixed */
        cb_free(b);
    }
}

typedef struct {
    atomic_int calls;
    uint32_t attempts[8];
    float rates[8];
} backoff_log;

static uint64_t attempt_seconds(void *user_data, uint32_t attempt, float last_failure_rate) {
    backoff_log *log = user_data;
    int i = atomic_fetch_add(&log->calls, 1);
    if (i < 8) {
        log->attempts[i] = attempt;
        log->rates[i] = last_failure_rate;
    }
    return (uint64_t)attempt * 1000;
}

static void test_custom_backoff_callback(void) {
    manual_clock clock;
    clock_init(&clock);
    backoff_log log;
    memset(&log, 0, sizeof log);
    atomic_init(&log.calls, 0);
    cb_builder *builder = builder_on(&clock, 5, 100);
    CHECK_EQ(cb_builder_set_count_window(builder, 4), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 4), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_open_backoff_custom(builder, attempt_seconds, &log), CB_STATUS_OK);
    cb_breaker *b = build(builder);

    /* Trips on 3 failures of 4 (75%): the callback hears that rate. */
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    }
    CHECK_EQ(atomic_load(&log.calls), 1);
    CHECK_EQ(log.attempts[0], 1);
    CHECK(fabsf(log.rates[0] - 75.0f) < 0.01f);
    CHECK_EQ(cb_open_for_ms(b), 1000);

    /* A failed probe re-opens: attempt 2, and no rate (the window was cleared). */
    advance(&clock, 1000);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(atomic_load(&log.calls), 2);
    CHECK_EQ(log.attempts[1], 2);
    CHECK(log.rates[1] == CB_RATE_NONE);
    CHECK_EQ(cb_open_for_ms(b), 2000);
    cb_permit probe;
    advance(&clock, 1999);
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_REJECTED);
    advance(&clock, 1);
    CHECK_EQ(cb_try_acquire(b, &probe), CB_STATUS_OK);

    /* A successful probe closes; the next open period is attempt 1 again. */
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_force_open(b), CB_STATUS_OK);
    CHECK_EQ(atomic_load(&log.calls), 3);
    CHECK_EQ(log.attempts[2], 1);
    CHECK_EQ(cb_open_for_ms(b), 1000);
    cb_free(b);

    /* NULL removes the backoff: back to the reset timeout. */
    builder = builder_on(&clock, 1, 100);
    CHECK_EQ(cb_builder_set_open_backoff_custom(builder, attempt_seconds, &log), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_open_backoff_custom(builder, NULL, NULL), CB_STATUS_OK);
    b = build(builder);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_open_for_ms(b), 100);
    CHECK_EQ(atomic_load(&log.calls), 3);
    cb_free(b);
}

static atomic_int transitions;

static void count_transitions(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    (void)user_data;
    (void)breaker;
    (void)from;
    (void)to;
    atomic_fetch_add(&transitions, 1);
}

static void test_metrics_only_never_rejects(void) {
    manual_clock clock;
    clock_init(&clock);
    atomic_init(&transitions, 0);
    cb_config c = cb_config_default();
    c.fail_max = 1;
    c.on_state_change = count_transitions;
    cb_builder *builder = NULL;
    CHECK_EQ(cb_builder_new(&c, &builder), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_clock(builder, manual_now, &clock), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_mode(builder, CB_MODE_METRICS_ONLY), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    CHECK_EQ(cb_current_mode(b), CB_MODE_METRICS_ONLY);

    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    /* The would-be trip is made and reported... */
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(atomic_load(&transitions), 1);
    /* ...but nothing is rejected; what it would have rejected counts for nothing. */
    for (int i = 0; i < 100; i++) {
        cb_permit p;
        uint64_t retry = 12345;
        CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_OK);
        CHECK_EQ(retry, 12345);
        CHECK_EQ(cb_record(b, p, CB_OUTCOME_FAILURE), CB_STATUS_STALE_PERMIT);
    }
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(atomic_load(&transitions), 1);
    cb_free(b);
}

static void test_disabled_admits_and_counts_nothing(void) {
    manual_clock clock;
    clock_init(&clock);
    atomic_init(&transitions, 0);
    cb_config c = cb_config_default();
    c.fail_max = 1;
    c.on_state_change = count_transitions;
    cb_builder *builder = NULL;
    CHECK_EQ(cb_builder_new(&c, &builder), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_clock(builder, manual_now, &clock), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_count_window(builder, 10), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 1), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_mode(builder, CB_MODE_DISABLED), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    CHECK_EQ(cb_current_mode(b), CB_MODE_DISABLED);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    }
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    CHECK_EQ(cb_window_calls(b), 0);
    CHECK(cb_failure_rate(b) == CB_RATE_NONE);
    CHECK_EQ(atomic_load(&transitions), 0);
    /* A forced open still changes the state, and rejects nothing. */
    CHECK_EQ(cb_force_open(b), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(call(b, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    cb_free(b);
}

static void test_retry_after(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 1, 1000);
    CHECK_EQ(cb_builder_set_probe_lease_ms(builder, 5000), CB_STATUS_OK);
    cb_breaker *b = build(builder);
    cb_permit p = {77}, probe;
    uint64_t retry = 99;

    /* Closed: admitted, the retry-after is not written. */
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_OK);
    CHECK_EQ(retry, 99);
    CHECK_EQ(cb_record(b, p, CB_OUTCOME_FAILURE), CB_STATUS_OK);

    /* Open: the time left of the open period; the permit is not written. */
    p.bits = 77;
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_REJECTED);
    CHECK_EQ(retry, 1000);
    CHECK_EQ(p.bits, 77);
    advance(&clock, 300);
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_REJECTED);
    CHECK_EQ(retry, 700);
    advance(&clock, 700);
    retry = 99;
    CHECK_EQ(cb_try_acquire_retry_after(b, &probe, &retry), CB_STATUS_OK);
    CHECK_EQ(retry, 99);
    CHECK_EQ(cb_current_state(b), CB_STATE_HALF_OPEN);

    /* Half-open with its slot taken: the time left on the probe's lease. */
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_REJECTED);
    CHECK_EQ(retry, 5000);
    advance(&clock, 2000);
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_REJECTED);
    CHECK_EQ(retry, 3000);
    CHECK_EQ(p.bits, 77);

    /* NULL out-parameters are refused and write nothing. */
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, NULL), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_try_acquire_retry_after(b, NULL, &retry), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_try_acquire_retry_after(NULL, &p, &retry), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(retry, 3000);
    CHECK_EQ(cb_record(b, probe, CB_OUTCOME_SUCCESS), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_CLOSED);
    cb_free(b);
}

static void test_bad_values(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_builder *builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_count_window(builder, 2), CB_STATUS_OK);
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 2), CB_STATUS_OK);

    /* Each refused, and nothing changes. */
    CHECK_EQ(cb_builder_set_count_window(builder, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_time_window_ms(builder, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_window_buckets(builder, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_window_buckets(builder, 17), CB_STATUS_INVALID_ARGUMENT);
    const float bad_percents[] = {0.0f, -1.0f, 100.5f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_percents / sizeof bad_percents[0]; i++) {
        CHECK_EQ(cb_builder_set_failure_rate_threshold(builder, bad_percents[i]), CB_STATUS_INVALID_ARGUMENT);
        CHECK_EQ(cb_builder_set_slow_call_rate_threshold(builder, bad_percents[i]), CB_STATUS_INVALID_ARGUMENT);
    }
    CHECK_EQ(cb_builder_set_minimum_calls(builder, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_slow_call_duration_ms(builder, 0), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_mode(builder, (cb_mode)3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_mode(builder, (cb_mode)0xffffffffu), CB_STATUS_INVALID_ARGUMENT);
    const double bad_multipliers[] = {0.0, 0.99, -2.0, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_multipliers / sizeof bad_multipliers[0]; i++) {
        CHECK_EQ(cb_builder_set_open_backoff_exponential(builder, bad_multipliers[i], 1000, CB_JITTER_NONE),
                 CB_STATUS_INVALID_ARGUMENT);
    }
    CHECK_EQ(cb_builder_set_open_backoff_exponential(builder, 2.0, 1000, (cb_jitter)3), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_failure_rate_threshold(builder, 100.0f), CB_STATUS_OK); /* the top is allowed */

    /* Still a count window of 2, enforcing, no backoff: 2 failures trip it
     * (fail_max 5 would not), for the reset timeout. */
    cb_breaker *b = build(builder);
    CHECK_EQ(cb_current_mode(b), CB_MODE_ENFORCING);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_current_state(b), CB_STATE_OPEN);
    CHECK_EQ(cb_open_for_ms(b), 60000);
    cb_free(b);

    /* Settings that do not combine are refused at build. */
    builder = builder_on(&clock, 5, 60000);
    CHECK_EQ(cb_builder_set_slow_call_duration_ms(builder, 100), CB_STATUS_OK);
    b = (cb_breaker *)(uintptr_t)0x10;
    CHECK_EQ(cb_builder_build(builder, &b), CB_STATUS_INVALID_ARGUMENT); /* slow calls need a window */
    CHECK(b == (cb_breaker *)(uintptr_t)0x10);
    cb_builder_free(builder);

    /* NULL builders and breakers. */
    CHECK_EQ(cb_builder_set_count_window(NULL, 10), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_time_window_ms(NULL, 10), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_window_buckets(NULL, 10), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_failure_rate_threshold(NULL, 50.0f), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_minimum_calls(NULL, 10), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_slow_call_duration_ms(NULL, 10), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_slow_call_rate_threshold(NULL, 50.0f), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_mode(NULL, CB_MODE_DISABLED), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_open_backoff_exponential(NULL, 2.0, 10, CB_JITTER_NONE), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_open_backoff_custom(NULL, attempt_seconds, NULL), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_builder_set_clock(NULL, manual_now, &clock), CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_failure_rate(NULL) == CB_RATE_NONE);
    CHECK(cb_slow_call_rate(NULL) == CB_RATE_NONE);
    CHECK(cb_window_calls(NULL) == CB_NO_VALUE);
    CHECK(cb_open_for_ms(NULL) == CB_NO_VALUE);
    CHECK_EQ(cb_current_mode(NULL), CB_MODE_ENFORCING);
    cb_permit p = {5};
    cb_timed_permit t = {{5}, 5};
    CHECK_EQ(cb_record_timed(NULL, p, CB_OUTCOME_SUCCESS, 1), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_try_acquire_timed(NULL, &t), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_record_timed_permit(NULL, t, CB_OUTCOME_SUCCESS), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(t.started_ms, 5);

    /* A breaker with the consecutive rule: no window, no rates. */
    cb_config c = cb_config_default();
    CHECK_EQ(cb_new(&c, &b), CB_STATUS_OK);
    CHECK(cb_failure_rate(b) == CB_RATE_NONE);
    CHECK(cb_slow_call_rate(b) == CB_RATE_NONE);
    CHECK(cb_window_calls(b) == CB_NO_VALUE);
    CHECK(cb_open_for_ms(b) == CB_NO_VALUE); /* not open */
    CHECK_EQ(cb_try_acquire_timed(b, NULL), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_try_acquire_timed(b, &t), CB_STATUS_OK);
    CHECK(t.started_ms == CB_NO_VALUE);
    CHECK_EQ(cb_record_timed_permit(b, t, (cb_outcome)3), CB_STATUS_INVALID_ARGUMENT);
    cb_timed_permit forged = t;
    forged.permit.bits ^= 1u << 20;
    CHECK_EQ(cb_record_timed_permit(b, forged, CB_OUTCOME_FAILURE), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_record_timed(b, forged.permit, CB_OUTCOME_FAILURE, 1), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_record_timed_permit(b, t, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    CHECK_EQ(cb_fail_counter(b), 1);
    cb_free(b);
}

static void test_storage_health_of_an_in_memory_breaker(void) {
    cb_config c = cb_config_default();
    cb_breaker *b = NULL;
    CHECK_EQ(cb_new(&c, &b), CB_STATUS_OK);
    cb_storage_health h;
    memset(&h, 0xab, sizeof h);
    char message[16] = "untouched";
    CHECK_EQ(cb_get_storage_health(b, &h, message, sizeof message), CB_STATUS_OK);
    CHECK_EQ(h.shared, 0);
    CHECK_EQ(h.reachable, 1);
    CHECK_EQ(h.for_ms, 0);
    CHECK_EQ(h.last_error_len, 0);
    CHECK_EQ(message[0], '\0');
    CHECK_EQ(cb_get_storage_health(b, &h, NULL, 0), CB_STATUS_OK);
    memset(&h, 0xab, sizeof h);
    CHECK_EQ(cb_get_storage_health(b, NULL, message, sizeof message), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(cb_get_storage_health(NULL, &h, message, sizeof message), CB_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(h.shared, 0xabababab); /* not written */
    cb_free(b);
}

/* A clock read backwards: the breaker sees the latest reading instead, so
 * an open period is never cut short. */
static void test_a_clock_going_back_is_held(void) {
    manual_clock clock;
    clock_init(&clock);
    cb_breaker *b = build(builder_on(&clock, 1, 1000));
    CHECK_EQ(call(b, CB_OUTCOME_FAILURE), CB_STATUS_OK);
    advance(&clock, 600);
    cb_permit p;
    uint64_t retry = 0;
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_REJECTED);
    CHECK_EQ(retry, 400);
    atomic_fetch_sub(&clock.now_ms, 500);
    CHECK_EQ(cb_try_acquire_retry_after(b, &p, &retry), CB_STATUS_REJECTED);
    CHECK_EQ(retry, 400);
    cb_free(b);
}

int main(void) {
    printf("breakerbox %s: C tests of windows, backoff, modes and retry-after\n", cb_version());
    run_test("count window trips on rate", test_count_window_trips_on_rate);
    run_test("minimum calls", test_minimum_calls);
    run_test("time window forgets old calls", test_time_window_forgets_old_calls);
    run_test("slow calls by recorded duration", test_slow_calls_by_recorded_duration);
    run_test("exponential backoff grows to its cap", test_exponential_backoff_grows_to_its_cap);
    run_test("jittered backoff stays in range", test_jittered_backoff_stays_in_range);
    run_test("custom backoff callback", test_custom_backoff_callback);
    run_test("metrics-only never rejects", test_metrics_only_never_rejects);
    run_test("disabled admits and counts nothing", test_disabled_admits_and_counts_nothing);
    run_test("retry-after", test_retry_after);
    run_test("bad values", test_bad_values);
    run_test("storage health of an in-memory breaker", test_storage_health_of_an_in_memory_breaker);
    run_test("a clock going back is held", test_a_clock_going_back_is_held);
    printf("C policy tests: %d/%d passed (%d checks, %d failed)\n", tests_run - tests_failed, tests_run, checks_run,
           checks_failed);
    if (tests_failed != 0) {
        printf("C policy tests: FAIL\n");
        return 1;
    }
    printf("C policy tests: PASS\n");
    return 0;
}
