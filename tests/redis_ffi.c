/*
 * cb_new_redis from C: two handles on one namespace are one breaker, bad
 * input is an error code, and the handles take the ordinary permit
 * functions. A cb_builder sets the Redis options (fault policy, timeouts,
 * refresh interval, reconnect backoff, notifications, required
 * reachability), storage errors reach its on_storage_error callback, and
 * cb_get_storage_health reports the store's health; a builder reaches
 * the same server through a sentinel. Needs BREAKERBOX_REDIS_URL and
 * BREAKERBOX_REDIS_SENTINEL_URL (scripts/test-redis.sh sets them).
 */
#define _POSIX_C_SOURCE 200809L

#include "breakerbox.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int checks = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int transitions = 0;

static void on_change(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    (void)breaker;
    if (from == CB_STATE_CLOSED && to == CB_STATE_OPEN) {
        (*(int *)user_data)++;
    }
}

typedef struct {
    atomic_int count;
    atomic_int without_message;
    atomic_int wrong_handle;
    const cb_breaker *_Atomic handle;
} storage_errors_t;

/* Runs on a caller's thread or the breaker's background thread. */
static void on_storage_error(void *user_data, const cb_breaker *breaker, const char *message) {
    storage_errors_t *errors = user_data;
    atomic_fetch_add(&errors->count, 1);
    if (message == NULL || message[0] == '\0') {
        atomic_fetch_add(&errors->without_message, 1);
    }
    const cb_breaker *expected = atomic_load(&errors->handle);
    if (expected != NULL && breaker != expected) {
        atomic_fetch_add(&errors->wrong_handle, 1);
    }
}

/* The builder's Redis options, and storage errors from a Redis nobody runs. */
/* A custom backoff: its function cannot run at the fleet. */
static uint64_t one_second(void *user_data, uint32_t attempt, float last_failure_rate) {
    (void)user_data;
    (void)attempt;
    (void)last_failure_rate;
    return 1000;
}

static void test_builder_options_and_storage_errors(const cb_config *config, const char *url, const char *ns) {
    cb_builder *builder = NULL;
    CHECK(cb_builder_new(config, &builder) == CB_STATUS_OK && builder != NULL);
    CHECK(cb_builder_set_redis_fault_policy(builder, (cb_fault_policy)9) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_command_timeout_ms(builder, 0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_connect_timeout_ms(builder, 0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_refresh_interval_ms(builder, 0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_fault_policy(NULL, CB_FAULT_POLICY_LOCAL) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_max_backoff_ms(builder, 0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_max_backoff_ms(NULL, 5) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_notifications(builder, 2) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_notifications(NULL, 1) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_require_reachable(NULL) == CB_STATUS_INVALID_ARGUMENT);

    /* Redis options without a URL are refused, not silently dropped. */
    CHECK(cb_builder_set_redis_fault_policy(builder, CB_FAULT_POLICY_FAIL_CLOSED) == CB_STATUS_OK);
    cb_breaker *untouched = (cb_breaker *)&checks;
    cb_breaker *out = untouched;
    CHECK(cb_builder_build(builder, &out) == CB_STATUS_INVALID_ARGUMENT && out == untouched);
    CHECK(cb_builder_set_redis(builder, "not a url", ns) == CB_STATUS_STORAGE_ERROR);
    CHECK(cb_builder_set_redis(builder, NULL, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis(builder, url, "\xff") == CB_STATUS_INVALID_ARGUMENT);

    /* A port nobody listens on, fail-closed: every call is rejected, and
     * the errors reach C with a message. */
    storage_errors_t errors = {0, 0, 0, NULL};
    CHECK(cb_builder_set_redis(builder, "redis://127.0.0.1:1/", ns) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis_command_timeout_ms(builder, 50) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis_connect_timeout_ms(builder, 50) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis_refresh_interval_ms(builder, 20) == CB_STATUS_OK);
    CHECK(cb_builder_set_on_storage_error(builder, on_storage_error, &errors) == CB_STATUS_OK);
    cb_breaker *down = NULL;
    CHECK(cb_builder_build(builder, &down) == CB_STATUS_OK && down != NULL);
    atomic_store(&errors.handle, down);
    cb_permit permit;
    CHECK(cb_try_acquire(down, &permit) == CB_STATUS_REJECTED);
    CHECK(atomic_load(&errors.count) > 0);
    CHECK(cb_try_acquire(down, &permit) == CB_STATUS_REJECTED);
    /* Its health: shared, unreachable, with the latest fault's message,
     * cut to fit a small buffer. */
    cb_storage_health health;
    char message[256], small[8];
    CHECK(cb_get_storage_health(down, &health, message, sizeof message) == CB_STATUS_OK);
    CHECK(health.shared == 1 && health.reachable == 0);
    CHECK(health.last_error_len > 0 && strlen(message) == (health.last_error_len < sizeof message ? health.last_error_len : sizeof message - 1));
    CHECK(cb_get_storage_health(down, &health, small, sizeof small) == CB_STATUS_OK);
    CHECK(strlen(small) <= sizeof small - 1 && strncmp(small, message, strlen(small)) == 0);
    /* A fault policy refusal has no retry-after. */
    uint64_t retry_after = 0;
    CHECK(cb_try_acquire_retry_after(down, &permit, &retry_after) == CB_STATUS_REJECTED);
    CHECK(retry_after == CB_NO_VALUE);
    cb_free(down);
    CHECK(atomic_load(&errors.without_message) == 0);
    CHECK(atomic_load(&errors.wrong_handle) == 0);

    /* Required reachable: the build itself fails, as a storage error. */
    CHECK(cb_builder_set_redis_require_reachable(builder) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis_max_backoff_ms(builder, 100) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis_notifications(builder, 0) == CB_STATUS_OK);
    out = untouched;
    CHECK(cb_builder_build(builder, &out) == CB_STATUS_STORAGE_ERROR && out == untouched);

    /* A rate window, an exponential backoff and MetricsOnly are fleet-wide
       with Redis; a custom backoff and the Disabled mode are per-process
       rules, refused with it. */
    cb_builder *windowed = NULL;
    CHECK(cb_builder_new(config, &windowed) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis(windowed, url, ns) == CB_STATUS_OK);
    CHECK(cb_builder_set_count_window(windowed, 10) == CB_STATUS_OK);
    cb_breaker *fleet_windowed = NULL;
    CHECK(cb_builder_build(windowed, &fleet_windowed) == CB_STATUS_OK && fleet_windowed != NULL);
    cb_free(fleet_windowed);
    CHECK(cb_builder_set_open_backoff_exponential(windowed, 2.0, 1000, CB_JITTER_NONE) == CB_STATUS_OK);
    CHECK(cb_builder_build(windowed, &fleet_windowed) == CB_STATUS_OK && fleet_windowed != NULL);
    cb_free(fleet_windowed);
    CHECK(cb_builder_set_open_backoff_exponential(windowed, 2.0, 1000, CB_JITTER_EQUAL) == CB_STATUS_OK);
    CHECK(cb_builder_build(windowed, &fleet_windowed) == CB_STATUS_OK && fleet_windowed != NULL);
    cb_free(fleet_windowed);
    CHECK(cb_builder_set_open_backoff_custom(windowed, one_second, NULL) == CB_STATUS_OK);
    out = untouched;
    CHECK(cb_builder_build(windowed, &out) == CB_STATUS_INVALID_ARGUMENT && out == untouched);
    CHECK(cb_builder_set_open_backoff_custom(windowed, NULL, NULL) == CB_STATUS_OK);
    CHECK(cb_builder_set_mode(windowed, CB_MODE_METRICS_ONLY) == CB_STATUS_OK);
    CHECK(cb_builder_build(windowed, &fleet_windowed) == CB_STATUS_OK && fleet_windowed != NULL);
    cb_free(fleet_windowed);
    CHECK(cb_builder_set_mode(windowed, CB_MODE_DISABLED) == CB_STATUS_OK);
    CHECK(cb_builder_build(windowed, &out) == CB_STATUS_INVALID_ARGUMENT && out == untouched);
    /* The failure-rate half-open rule is the fleet's too. */
    CHECK(cb_builder_set_mode(windowed, CB_MODE_ENFORCING) == CB_STATUS_OK);
    CHECK(cb_builder_set_half_open_rule(windowed, CB_HALF_OPEN_RULE_FAILURE_RATE) == CB_STATUS_OK);
    CHECK(cb_builder_build(windowed, &fleet_windowed) == CB_STATUS_OK && fleet_windowed != NULL);
    cb_free(fleet_windowed);
    cb_builder_free(windowed);

    /* The same options against the live Redis: admitted, no error. */
    storage_errors_t none = {0, 0, 0, NULL};
    CHECK(cb_builder_set_redis(builder, url, ns) == CB_STATUS_OK);
    CHECK(cb_builder_set_on_storage_error(builder, on_storage_error, &none) == CB_STATUS_OK);
    cb_breaker *up = NULL;
    CHECK(cb_builder_build(builder, &up) == CB_STATUS_OK && up != NULL);
    CHECK(cb_try_acquire(up, &permit) == CB_STATUS_OK);
    CHECK(cb_record(up, permit, CB_OUTCOME_SUCCESS) == CB_STATUS_OK);
    CHECK(cb_get_storage_health(up, &health, message, sizeof message) == CB_STATUS_OK);
    CHECK(health.shared == 1 && health.reachable == 1 && health.last_error_len == 0 && message[0] == '\0');
    cb_free(up);
    CHECK(atomic_load(&none.count) == 0);
    cb_builder_free(builder);
}

/* Through a sentinel (BREAKERBOX_REDIS_SENTINEL_URL, watching the same
 * server as "m"), listed after a port nobody listens on: one breaker with
 * a handle made on the server's URL. */
static void test_sentinel(const cb_config *config, const char *url, const char *ns) {
    const char *sentinel = getenv("BREAKERBOX_REDIS_SENTINEL_URL");
    if (sentinel == NULL) {
        fprintf(stderr, "FAIL: BREAKERBOX_REDIS_SENTINEL_URL is not set; run scripts/test-redis.sh\n");
        exit(1);
    }
    const char *sentinels[] = {"redis://127.0.0.1:1/", sentinel};
    const char *not_urls[] = {"not a url"};
    const char *with_null[] = {sentinel, NULL};
    cb_builder *builder = NULL;
    CHECK(cb_builder_new(config, &builder) == CB_STATUS_OK);
    CHECK(cb_builder_set_redis_sentinel(NULL, sentinels, 2, "m", NULL, NULL, 0, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_sentinel(builder, NULL, 2, "m", NULL, NULL, 0, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_sentinel(builder, sentinels, 0, "m", NULL, NULL, 0, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_sentinel(builder, with_null, 2, "m", NULL, NULL, 0, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_sentinel(builder, sentinels, 2, NULL, NULL, NULL, 0, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_sentinel(builder, sentinels, 2, "", NULL, NULL, 0, ns) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_builder_set_redis_sentinel(builder, not_urls, 1, "m", NULL, NULL, 0, ns) == CB_STATUS_STORAGE_ERROR);
    /* Nothing was set: Redis options alone are refused at build. */
    CHECK(cb_builder_set_redis_require_reachable(builder) == CB_STATUS_OK);
    cb_breaker *untouched = (cb_breaker *)&checks;
    cb_breaker *out = untouched;
    CHECK(cb_builder_build(builder, &out) == CB_STATUS_INVALID_ARGUMENT && out == untouched);

    CHECK(cb_builder_set_redis_sentinel(builder, sentinels, 2, "m", NULL, NULL, 0, ns) == CB_STATUS_OK);
    cb_breaker *through = NULL;
    CHECK(cb_builder_build(builder, &through) == CB_STATUS_OK && through != NULL);
    cb_permit permit;
    CHECK(cb_try_acquire(through, &permit) == CB_STATUS_OK);
    CHECK(cb_record(through, permit, CB_OUTCOME_FAILURE) == CB_STATUS_OK);
    cb_breaker *direct = NULL;
    CHECK(cb_new_redis(config, url, ns, &direct) == CB_STATUS_OK && direct != NULL);
    CHECK(cb_fail_counter(direct) == 1);

    /* A master the sentinel does not know: the required first sync fails. */
    CHECK(cb_builder_set_redis_sentinel(builder, sentinels, 2, "nosuch", NULL, NULL, 0, ns) == CB_STATUS_OK);
    CHECK(cb_builder_build(builder, &out) == CB_STATUS_STORAGE_ERROR && out == untouched);
    cb_free(through);
    cb_free(direct);
    cb_builder_free(builder);
}

/* Whether a call is admitted now; an admitted one is recorded as ignored. */
static int admits(const cb_breaker *b) {
    cb_permit permit;
    if (cb_try_acquire(b, &permit) != CB_STATUS_OK) {
        return 0;
    }
    CHECK(cb_record(b, permit, CB_OUTCOME_IGNORED) == CB_STATUS_OK);
    return 1;
}

int main(void) {
    const char *url = getenv("BREAKERBOX_REDIS_URL");
    if (url == NULL) {
        fprintf(stderr, "FAIL: BREAKERBOX_REDIS_URL is not set; run scripts/test-redis.sh\n");
        return 1;
    }
    char ns[96];
    snprintf(ns, sizeof ns, "c-abi-%ld-%ld", (long)getpid(), (long)time(NULL));
    char other_ns[128];
    snprintf(other_ns, sizeof other_ns, "%s-other", ns);

    cb_config config = cb_config_default();
    config.fail_max = 2;
    config.name = "db";
    cb_breaker *untouched = (cb_breaker *)&checks;
    cb_breaker *out = untouched;

    /* Bad input: an error code, *out not written. */
    CHECK(cb_new_redis(NULL, url, ns, &out) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_new_redis(&config, NULL, ns, &out) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_new_redis(&config, url, ns, NULL) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(cb_new_redis(&config, "not a url", ns, &out) == CB_STATUS_STORAGE_ERROR);
    CHECK(cb_new_redis(&config, url, "\xff\xfe", &out) == CB_STATUS_INVALID_ARGUMENT);
    cb_config zero = config;
    zero.fail_max = 0;
    CHECK(cb_new_redis(&zero, url, ns, &out) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(out == untouched);
    CHECK(strlen(cb_status_str(CB_STATUS_STORAGE_ERROR)) > 0);

    /* Two handles, one namespace: one breaker. */
    cb_config with_callback = config;
    with_callback.on_state_change = on_change;
    with_callback.user_data = &transitions;
    cb_breaker *a = NULL, *b = NULL, *c = NULL;
    CHECK(cb_new_redis(&with_callback, url, ns, &a) == CB_STATUS_OK && a != NULL);
    CHECK(cb_new_redis(&config, url, ns, &b) == CB_STATUS_OK && b != NULL);
    CHECK(cb_new_redis(&config, url, other_ns, &c) == CB_STATUS_OK && c != NULL);
    CHECK(strcmp(cb_name(a), "db") == 0);

    cb_permit permit;
    CHECK(cb_try_acquire(a, &permit) == CB_STATUS_OK);
    CHECK(cb_record(a, permit, CB_OUTCOME_FAILURE) == CB_STATUS_OK);
    CHECK(cb_try_acquire(b, &permit) == CB_STATUS_OK);
    CHECK(cb_record(b, permit, CB_OUTCOME_FAILURE) == CB_STATUS_OK); /* the second: trips */
    CHECK(cb_current_state(b) == CB_STATE_OPEN);

    /* a never failed twice itself; it learns of the trip by announcement. */
    int waited = 0;
    while (admits(a) && waited < 1000) {
        sleep_ms(1);
        waited++;
    }
    CHECK(waited < 1000);
    CHECK(cb_current_state(a) == CB_STATE_OPEN);
    CHECK(transitions == 1);
    CHECK(cb_try_acquire(a, &permit) == CB_STATUS_REJECTED);

    /* A permit from an ended episode is stale whichever handle records it. */
    CHECK(cb_force_close(a) == CB_STATUS_OK);
    cb_permit old;
    CHECK(cb_try_acquire(a, &old) == CB_STATUS_OK);
    CHECK(cb_force_open(b) == CB_STATUS_OK);
    CHECK(cb_record(a, old, CB_OUTCOME_FAILURE) == CB_STATUS_STALE_PERMIT);
    CHECK(admits(c)); /* another namespace: untouched */
    CHECK(cb_force_close(b) == CB_STATUS_OK);
    waited = 0;
    while (!admits(a) && waited < 1000) {
        sleep_ms(1);
        waited++;
    }
    CHECK(waited < 1000);

    cb_free(a);
    cb_free(b);
    cb_free(c);
    cb_free(NULL);

    char builder_ns[128];
    snprintf(builder_ns, sizeof builder_ns, "%s-builder", ns);
    test_builder_options_and_storage_errors(&config, url, builder_ns);
    char sentinel_ns[128];
    snprintf(sentinel_ns, sizeof sentinel_ns, "%s-sentinel", ns);
    test_sentinel(&config, url, sentinel_ns);
    printf("cb_new_redis from C: %d checks passed\n", checks);
    return 0;
}
