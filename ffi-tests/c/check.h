/* The checks and the test runner the C tests share: a failed check is
 * reported with its line and counted, and the test goes on. */
#ifndef BREAKERBOX_TEST_CHECK_H
#define BREAKERBOX_TEST_CHECK_H

#include <stdio.h>

static int checks_failed = 0;
static int checks_run = 0;
static int tests_failed = 0;
static int tests_run = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        checks_run++;                                                                   \
        if (!(cond)) {                                                                  \
            checks_failed++;                                                            \
            fprintf(stderr, "  FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                               \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                 \
        checks_run++;                                                                   \
        if (check_a_ != check_b_) {                                                     \
            checks_failed++;                                                            \
            fprintf(stderr, "  FAILED %s:%d: %s == %s (%lld != %lld)\n", __FILE__,      \
                    __LINE__, #a, #b, check_a_, check_b_);                              \
        }                                                                               \
    } while (0)

static void run_test(const char *name, void (*test)(void)) {
    int before = checks_failed;
    tests_run++;
    test();
    if (checks_failed != before) {
        tests_failed++;
        printf("not ok - %s\n", name);
    } else {
        printf("ok - %s\n", name);
    }
    fflush(stdout);
}

#endif
