// The C++17 RAII wrapper (include/breakerbox.hpp), with std::thread.
#include "breakerbox.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

int checks_failed = 0;
int tests_failed = 0;
int tests_run = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            ++checks_failed;                                                          \
            std::fprintf(stderr, "  FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

void run(const char *name, void (*test)()) {
    const int before = checks_failed;
    ++tests_run;
    try {
        test();
    } catch (const std::exception &e) {
        ++checks_failed;
        std::fprintf(stderr, "  unexpected exception: %s\n", e.what());
    }
    const bool ok = checks_failed == before;
    tests_failed += ok ? 0 : 1;
    std::printf("%s - %s\n", ok ? "ok" : "not ok", name);
}

using breakerbox::Breaker;
using breakerbox::Error;
using breakerbox::Mode;
using breakerbox::Outcome;
using breakerbox::Permit;
using breakerbox::State;

cb_config config(uint32_t fail_max, uint32_t success_threshold = 1, uint32_t half_open_max_calls = 1) {
    cb_config c = cb_config_default();
    c.fail_max = fail_max;
    c.success_threshold = success_threshold;
    c.half_open_max_calls = half_open_max_calls;
    return c;
}

static_assert(!std::is_copy_constructible_v<Breaker> && !std::is_copy_assignable_v<Breaker>);
static_assert(std::is_nothrow_move_constructible_v<Breaker> && std::is_nothrow_move_assignable_v<Breaker>);
static_assert(!std::is_copy_constructible_v<Permit> && !std::is_copy_assignable_v<Permit>);
static_assert(std::is_nothrow_move_constructible_v<Permit>);

void acquire_record_and_reject() {
    Breaker b(config(2));
    CHECK(b.state() == State::Closed);
    CHECK(b.name().empty());
    CHECK(!Breaker::version().empty());
    auto p = b.try_acquire();
    CHECK(p.has_value());
    CHECK(p->pending());
    CHECK(p->failure() == CB_STATUS_OK);
    CHECK(!p->pending());
    CHECK(p->failure() == CB_STATUS_STALE_PERMIT); // the wrapper refuses a second record
    CHECK(b.fail_counter() == 1);
    CHECK(b.try_acquire()->failure() == CB_STATUS_OK);
    CHECK(b.state() == State::Open);
    CHECK(!b.try_acquire().has_value());
}

void unrecorded_permit_records_a_failure() {
    Breaker b(config(3));
    { auto p = b.try_acquire(); }
    CHECK(b.fail_counter() == 1);
    try {
        auto p = b.try_acquire();
        throw std::runtime_error("dependency threw");
    } catch (const std::runtime_error &) {
    }
    CHECK(b.fail_counter() == 2);

    // Moved-from permits record nothing; the moved-to one records once.
    {
        auto p = b.try_acquire();
        Permit q = std::move(*p);
        CHECK(!p->pending());
        CHECK(q.pending());
        CHECK(q.success() == CB_STATUS_OK);
    }
    CHECK(b.fail_counter() == 0);

    // Move-assigning over a pending permit settles it as a failure first.
    {
        auto p = b.try_acquire();
        auto q = b.try_acquire();
        *p = std::move(*q);
        CHECK(b.fail_counter() == 1);
        CHECK(p->ignore() == CB_STATUS_OK);
    }
    CHECK(b.fail_counter() == 1);

    // release() gives up the guard: the raw permit is recorded by hand.
    cb_permit raw;
    {
        auto p = b.try_acquire();
        raw = p->release();
    }
    CHECK(b.fail_counter() == 1);
    CHECK(cb_record(b.get(), raw, CB_OUTCOME_SUCCESS) == CB_STATUS_OK);
    CHECK(b.fail_counter() == 0);
}

void probes_and_forced_states() {
    Breaker b(config(1, 2, 1));
    CHECK(b.set_probe_lease_ms(600000) == CB_STATUS_OK);
    b.force_half_open();
    CHECK(b.state() == State::HalfOpen);
    {
        auto probe = b.try_acquire();
        CHECK(probe.has_value());
        CHECK(!b.try_acquire().has_value());
        CHECK(b.probes_in_flight() == 1);
        CHECK(probe->success() == CB_STATUS_OK);
    }
    CHECK(b.success_counter() == 1);
    CHECK(b.try_acquire()->success() == CB_STATUS_OK);
    CHECK(b.state() == State::Closed);
    b.force_open();
    CHECK(b.state() == State::Open);
    b.force_close();
    CHECK(b.state() == State::Closed);
    CHECK(b.set_fail_max(0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(b.set_success_threshold(0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(b.set_half_open_max_calls(0) == CB_STATUS_INVALID_ARGUMENT);
    CHECK(b.set_reset_timeout_ms(10) == CB_STATUS_OK);
}

void bad_config_throws() {
    bool threw = false;
    try {
        Breaker b(config(0));
    } catch (const breakerbox::Error &e) {
        threw = e.status() == CB_STATUS_INVALID_ARGUMENT;
    }
    CHECK(threw);
    cb_config bad_name = cb_config_default();
    bad_name.name = "\xff";
    threw = false;
    try {
        Breaker b(bad_name);
    } catch (const breakerbox::Error &e) {
        threw = e.status() == CB_STATUS_INVALID_ARGUMENT;
    }
    CHECK(threw);
}

void moves_keep_the_handle_and_the_callback() {
    std::vector<std::pair<State, State>> seen;
    cb_config c = config(1);
    c.name = "orders";
    Breaker a(c, [&seen](State from, State to) { seen.emplace_back(from, to); });
    const cb_breaker *handle = a.get();
    auto permit = a.try_acquire();

    Breaker b(std::move(a));
    CHECK(a.get() == nullptr);
    CHECK(b.get() == handle);
    CHECK(b.name() == "orders");
    CHECK(permit->failure() == CB_STATUS_OK); // a permit outlives moves of its breaker
    CHECK(b.state() == State::Open);

    Breaker c2(config(5));
    c2 = std::move(b); // frees c2's own breaker, takes b's
    CHECK(c2.get() == handle);
    c2.force_close();
    CHECK(seen.size() == 2);
    CHECK(seen.size() == 2 && seen[0] == std::make_pair(State::Closed, State::Open));
    CHECK(seen.size() == 2 && seen[1] == std::make_pair(State::Open, State::Closed));
}

void threads_count_every_dropped_permit_as_a_failure() {
    constexpr int kThreads = 8;
    constexpr int kRounds = 500;
    Breaker b(config(1000000));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&b] {
            for (int i = 0; i < kRounds; ++i) {
                try {
                    auto p = b.try_acquire();
                    if (!p) {
                        continue;
                    }
                    throw std::runtime_error("dependency threw");
                } catch (const std::runtime_error &) {
                }
            }
        });
    }
    for (auto &t : threads) {
        t.join();
    }
    CHECK(b.state() == State::Closed);
    CHECK(b.fail_counter() == kThreads * kRounds);
}

void threads_half_open_admits_at_most_the_limit() {
    constexpr int kThreads = 8;
    constexpr int kRounds = 1000;
    constexpr uint32_t kLimit = 2;
    Breaker b(config(5, 65535, kLimit));
    CHECK(b.set_probe_lease_ms(600000) == CB_STATUS_OK);
    b.force_half_open();
    std::atomic<int> in_flight{0};
    std::atomic<int> max_in_flight{0};
    std::atomic<long> successes{0};
    std::atomic<long> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kRounds; ++i) {
                auto p = b.try_acquire();
                if (!p) {
                    continue;
                }
                const int now = in_flight.fetch_add(1) + 1;
                int seen = max_in_flight.load();
                while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
                }
                std::this_thread::sleep_for(std::chrono::microseconds(20)); // let others race
                in_flight.fetch_sub(1);
                const cb_status s = (i % 2 == 0) ? p->success() : p->ignore();
                if (s != CB_STATUS_OK) {
                    bad.fetch_add(1);
                } else if (i % 2 == 0) {
                    successes.fetch_add(1);
                }
            }
        });
    }
    for (auto &t : threads) {
        t.join();
    }
    std::printf("  half-open: max %d probes at once (limit %u)\n", max_in_flight.load(), kLimit);
    CHECK(max_in_flight.load() >= 2); // the probes did overlap
    CHECK(max_in_flight.load() <= static_cast<int>(kLimit));
    CHECK(bad.load() == 0);
    CHECK(b.state() == State::HalfOpen);
    CHECK(b.success_counter() == static_cast<uint32_t>(successes.load()));
}

std::uint64_t manual_now(void *user_data) {
    return static_cast<std::atomic<std::uint64_t> *>(user_data)->load();
}

// A builder's windows, backoff and clock, through the wrapper's getters.
void a_builder_with_a_window_and_a_backoff() {
    std::atomic<std::uint64_t> now{1000};
    cb_config c = config(1);
    c.reset_timeout_ms = 100;
    cb_builder *builder = nullptr;
    CHECK(cb_builder_new(&c, &builder) == CB_STATUS_OK);
    CHECK(cb_builder_set_clock(builder, manual_now, &now) == CB_STATUS_OK);
    CHECK(cb_builder_set_count_window(builder, 4) == CB_STATUS_OK);
    CHECK(cb_builder_set_minimum_calls(builder, 4) == CB_STATUS_OK);
    CHECK(cb_builder_set_slow_call_duration_ms(builder, 50) == CB_STATUS_OK);
    CHECK(cb_builder_set_open_backoff_exponential(builder, 3.0, 10000, CB_JITTER_NONE) == CB_STATUS_OK);
    Breaker b(builder);
    Breaker other(builder);  // a builder makes any number of independent breakers
    cb_builder_free(builder);
    CHECK(b.mode() == Mode::Enforcing);
    CHECK(b.window_calls() == std::optional<std::uint64_t>(0));
    CHECK(!b.failure_rate() && !b.slow_call_rate() && !b.open_for());
    for (int i = 0; i < 3; i++) {
        auto permit = b.try_acquire();
        CHECK(permit && permit->record_timed(Outcome::Success, std::chrono::milliseconds(i * 40)) == CB_STATUS_OK);
    }
    CHECK(b.try_acquire()->failure() == CB_STATUS_OK);  // 1 of 4 failed, 1 of 4 slow (80 ms)
    CHECK(b.state() == State::Closed);
    CHECK(b.failure_rate() == std::optional<float>(25.0f));
    CHECK(b.slow_call_rate() == std::optional<float>(25.0f));
    CHECK(other.window_calls() == std::optional<std::uint64_t>(0));

    b.force_open();
    CHECK(b.open_for() == std::optional<std::chrono::milliseconds>(100));
    std::optional<std::chrono::milliseconds> retry_after;
    CHECK(!b.try_acquire(retry_after));
    CHECK(retry_after == std::optional<std::chrono::milliseconds>(100));
    now += 100;
    auto probe = b.try_acquire(retry_after);
    CHECK(probe && probe->failure() == CB_STATUS_OK);  // re-opens: 3 × 100 ms
    CHECK(b.open_for() == std::optional<std::chrono::milliseconds>(300));
    now += 299;
    CHECK(!b.try_acquire(retry_after));
    CHECK(retry_after == std::optional<std::chrono::milliseconds>(1));

    cb_builder *bad = nullptr;
    CHECK(cb_builder_new(nullptr, &bad) == CB_STATUS_OK);
    CHECK(cb_builder_set_slow_call_duration_ms(bad, 10) == CB_STATUS_OK);  // needs a window
    bool threw = false;
    try {
        Breaker refused(bad);
    } catch (const Error &e) {
        threw = e.status() == CB_STATUS_INVALID_ARGUMENT;
    }
    CHECK(threw);
    cb_builder_free(bad);
}

} // namespace

// A C callback (not the wrapper's noexcept trampoline) that throws: the
// exception must not unwind through the library; the process aborts.
void throwing_callback(void *, const cb_breaker *, cb_state, cb_state) {
    throw std::runtime_error("thrown from a state-change callback");
}

void a_throwing_callback_aborts() {
    std::fflush(nullptr);
    const pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        // The library's message goes to stderr; the parent checks the signal.
        cb_config c = config(1);
        c.on_state_change = throwing_callback;
        cb_breaker *b = nullptr;
        if (cb_new(&c, &b) != CB_STATUS_OK) {
            _exit(2);
        }
        cb_permit p;
        if (cb_try_acquire(b, &p) != CB_STATUS_OK) {
            _exit(3);
        }
        try {
            (void)cb_record(b, p, CB_OUTCOME_FAILURE);  // trips: the callback throws
        } catch (...) {
            _exit(4);  // caught after unwinding through the library: wrong
        }
        _exit(5);  // returned as if nothing happened: wrong
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    if (!WIFSIGNALED(status)) {
        std::fprintf(stderr, "  child exited with %d\n", WEXITSTATUS(status));
    }
}

std::uint64_t throwing_backoff(void *, std::uint32_t, float) {
    throw std::runtime_error("thrown from a backoff function");
}

std::uint64_t throwing_clock(void *) { throw std::runtime_error("thrown from a clock"); }

// As above, for the functions a decision asks for a value: a backoff that
// throws when the breaker opens, and a clock that throws when it is read.
void a_throwing_backoff_or_clock_aborts() {
    for (int which = 0; which < 2; which++) {
        std::fflush(nullptr);
        const pid_t child = fork();
        CHECK(child >= 0);
        if (child == 0) {
            cb_builder *builder = nullptr;
            if (cb_builder_new(nullptr, &builder) != CB_STATUS_OK) {
                _exit(2);
            }
            if (which == 0) {
                (void)cb_builder_set_open_backoff_custom(builder, throwing_backoff, nullptr);
            } else {
                (void)cb_builder_set_clock(builder, throwing_clock, nullptr);
            }
            cb_breaker *b = nullptr;
            if (cb_builder_build(builder, &b) != CB_STATUS_OK) {
                _exit(3);
            }
            try {
                (void)cb_force_open(b);  // asks the backoff, and reads the clock
                cb_permit p;
                (void)cb_try_acquire(b, &p);
            } catch (...) {
                _exit(4);  // caught after unwinding through the library: wrong
            }
            _exit(5);  // returned as if nothing happened: wrong
        }
        int status = 0;
        CHECK(waitpid(child, &status, 0) == child);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
        if (!WIFSIGNALED(status)) {
            std::fprintf(stderr, "  child (%s) exited with %d\n", which == 0 ? "backoff" : "clock",
                         WEXITSTATUS(status));
        }
    }
}

int main() {
    std::printf("breakerbox %s: C++ wrapper tests\n", cb_version());
    run("acquire, record and reject", acquire_record_and_reject);
    run("an unrecorded permit records a failure", unrecorded_permit_records_a_failure);
    run("probes and forced states", probes_and_forced_states);
    run("a bad config throws", bad_config_throws);
    run("moves keep the handle and the callback", moves_keep_the_handle_and_the_callback);
    run("threads: every dropped permit is a failure", threads_count_every_dropped_permit_as_a_failure);
    run("threads: half-open admits at most the limit", threads_half_open_admits_at_most_the_limit);
    run("a throwing callback aborts the process", a_throwing_callback_aborts);
    run("a builder with a window and a backoff", a_builder_with_a_window_and_a_backoff);
    run("a throwing backoff or clock aborts the process", a_throwing_backoff_or_clock_aborts);
    std::printf("C++ tests: %d/%d passed\n", tests_run - tests_failed, tests_run);
    std::printf("C++ tests: %s\n", tests_failed == 0 ? "PASS" : "FAIL");
    return tests_failed == 0 ? 0 : 1;
}
