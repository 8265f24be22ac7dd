/*
 * A program as it was written and compiled against the 0.1 header (the copy
 * of it beside this file, never regenerated), linked at run time against
 * today's libbreakerbox.so.0: every cb_config field it sets must take
 * effect, and the callback must see what it saw in 0.1.
 */
#include "breakerbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

typedef struct {
    int calls;
    cb_state last_from, last_to;
    const cb_breaker *handle;
} seen_t;

static void on_change(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    seen_t *seen = user_data;
    seen->calls++;
    seen->last_from = from;
    seen->last_to = to;
    seen->handle = breaker;
}

static cb_status call(const cb_breaker *b, cb_outcome outcome) {
    cb_permit p;
    cb_status s = cb_try_acquire(b, &p);
    return s == CB_STATUS_OK ? cb_record(b, p, outcome) : s;
}

int main(void) {
    /* The 0.1 layout: 48 bytes on LP64, with these field offsets. */
    CHECK(sizeof(cb_config) == 48);

    cb_config defaults = cb_config_default();
    CHECK(defaults.fail_max == 5 && defaults.reset_timeout_ms == 60000);
    CHECK(defaults.success_threshold == 1 && defaults.half_open_max_calls == 1);
    CHECK(defaults.name == NULL && defaults.on_state_change == NULL && defaults.user_data == NULL);

    seen_t seen = {0, CB_STATE_CLOSED, CB_STATE_CLOSED, NULL};
    cb_config config = cb_config_default();
    config.fail_max = 2;
    config.reset_timeout_ms = 3600000;
    config.success_threshold = 2;
    config.half_open_max_calls = 2;
    config.name = "legacy";
    config.on_state_change = on_change;
    config.user_data = &seen;
    cb_breaker *b = NULL;
    CHECK(cb_new(&config, &b) == CB_STATUS_OK && b != NULL);
    CHECK(strcmp(cb_name(b), "legacy") == 0);

    /* fail_max 2 */
    CHECK(call(b, CB_OUTCOME_FAILURE) == CB_STATUS_OK);
    CHECK(cb_current_state(b) == CB_STATE_CLOSED && cb_fail_counter(b) == 1);
    CHECK(call(b, CB_OUTCOME_FAILURE) == CB_STATUS_OK);
    CHECK(cb_current_state(b) == CB_STATE_OPEN);
    CHECK(seen.calls == 1 && seen.last_from == CB_STATE_CLOSED && seen.last_to == CB_STATE_OPEN);
    CHECK(seen.handle == b);
    /* an hour's reset timeout: still rejecting */
    cb_permit p;
    CHECK(cb_try_acquire(b, &p) == CB_STATUS_REJECTED);

    /* half_open_max_calls 2, success_threshold 2 */
    CHECK(cb_force_half_open(b) == CB_STATUS_OK);
    cb_permit p1, p2, p3;
    CHECK(cb_try_acquire(b, &p1) == CB_STATUS_OK);
    CHECK(cb_try_acquire(b, &p2) == CB_STATUS_OK);
    CHECK(cb_try_acquire(b, &p3) == CB_STATUS_REJECTED);
    CHECK(cb_record(b, p1, CB_OUTCOME_SUCCESS) == CB_STATUS_OK);
    CHECK(cb_current_state(b) == CB_STATE_HALF_OPEN);
    CHECK(cb_record(b, p2, CB_OUTCOME_SUCCESS) == CB_STATUS_OK);
    CHECK(cb_current_state(b) == CB_STATE_CLOSED);
    CHECK(seen.calls == 3 && seen.last_to == CB_STATE_CLOSED);

    /* Bad input is still an error. */
    cb_config zero = cb_config_default();
    zero.fail_max = 0;
    cb_breaker *none = NULL;
    CHECK(cb_new(&zero, &none) == CB_STATUS_INVALID_ARGUMENT && none == NULL);
    CHECK(strcmp(cb_version(), "0.0.0") > 0);

    cb_free(b);
    printf("0.1 ABI: PASS (a program built against the 0.1 header, run against libbreakerbox %s)\n", cb_version());
    return 0;
}
