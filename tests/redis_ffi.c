/*
 * cb_new_redis from C: two handles on one namespace are one breaker, bad
 * input is an error code, and the handles take the ordinary permit
 * functions. Needs BREAKERBOX_REDIS_URL (scripts/test-redis.sh sets it).
 */
#define _POSIX_C_SOURCE 200809L

#include "breakerbox.h"

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
    printf("cb_new_redis from C: %d checks passed\n", checks);
    return 0;
}
