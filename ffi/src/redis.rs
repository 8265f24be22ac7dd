//! A breaker whose state is shared by a fleet through Redis (the `redis`
//! feature; `BREAKERBOX_REDIS` in the header).

use crate::config::{builder_from, cb_builder, cb_config, write_handle};
use crate::handle::cb_breaker;
use crate::status::cb_status;
use breakerbox::redis::{FaultPolicy, RedisState, SentinelMaster};
use std::ffi::{c_char, CStr};
use std::time::Duration;

/// What a Redis-backed breaker decides while Redis is unreachable.
///
/// Taken as a 32-bit integer and checked: a value outside this list is
/// `CB_STATUS_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_fault_policy {
    /// Go on as a per-process breaker on the local mirror. The default.
    Local = 0,
    /// Admit every call; outcomes are not counted.
    FailOpen = 1,
    /// Reject every call.
    FailClosed = 2,
}

/// A fault policy exactly as C passed it; [`cb_fault_policy`] in the header.
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFaultPolicy(pub u32);

impl RawFaultPolicy {
    fn to_policy(self) -> Option<FaultPolicy> {
        match self.0 {
            x if x == cb_fault_policy::Local as u32 => Some(FaultPolicy::Local),
            x if x == cb_fault_policy::FailOpen as u32 => Some(FaultPolicy::FailOpen),
            x if x == cb_fault_policy::FailClosed as u32 => Some(FaultPolicy::FailClosed),
            _ => None,
        }
    }
}

/// A builder's Redis settings; the timeouts apply only with a URL.
#[derive(Default)]
pub(crate) struct RedisOptions {
    state: Option<RedisState>,
    policy: Option<FaultPolicy>,
    command_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    refresh_interval: Option<Duration>,
    max_backoff: Option<Duration>,
    require_reachable: bool,
    notifications: Option<bool>,
}

impl RedisOptions {
    /// Shares the breaker's state when a URL was set. Redis options without
    /// a URL are refused rather than silently dropped.
    pub(crate) fn apply(&self, builder: breakerbox::Builder) -> Result<breakerbox::Builder, cb_status> {
        let Some(state) = &self.state else {
            let any = self.policy.is_some()
                || self.command_timeout.is_some()
                || self.connect_timeout.is_some()
                || self.refresh_interval.is_some()
                || self.max_backoff.is_some()
                || self.require_reachable
                || self.notifications.is_some();
            return if any {
                Err(cb_status::InvalidArgument)
            } else {
                Ok(builder)
            };
        };
        let mut state = state.clone();
        if let Some(policy) = self.policy {
            state = state.policy(policy);
        }
        if let Some(timeout) = self.command_timeout {
            state = state.command_timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            state = state.connect_timeout(timeout);
        }
        if let Some(interval) = self.refresh_interval {
            state = state.refresh_interval(interval);
        }
        if let Some(backoff) = self.max_backoff {
            state = state.max_backoff(backoff);
        }
        if self.require_reachable {
            state = state.require_reachable();
        }
        if let Some(on) = self.notifications {
            state = state.notifications(on);
        }
        Ok(builder.shared(state))
    }
}

/// A NUL-terminated UTF-8 string; `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or NUL-terminated, and outlives `'a`.
unsafe fn optional_str<'a>(ptr: *const c_char) -> Result<Option<&'a str>, cb_status> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let text = unsafe { CStr::from_ptr(ptr) }.to_str();
    text.map(Some).map_err(|_| cb_status::InvalidArgument)
}

/// Parses `redis_url` and `namespace_` into a shared state.
///
/// # Safety
///
/// Both are NULL or NUL-terminated.
unsafe fn redis_state(redis_url: *const c_char, namespace_: *const c_char) -> Result<RedisState, cb_status> {
    // SAFETY: NULL or NUL-terminated per the contract.
    let url = unsafe { optional_str(redis_url) }?.ok_or(cb_status::InvalidArgument)?;
    // SAFETY: as above.
    let namespace = unsafe { optional_str(namespace_) }?;
    let state = RedisState::connect(url).map_err(|_| cb_status::StorageError)?;
    Ok(in_namespace(state, namespace))
}

fn in_namespace(state: RedisState, namespace: Option<&str>) -> RedisState {
    match namespace {
        Some(ns) => state.namespace(ns),
        None => state,
    }
}

/// The `len` NUL-terminated UTF-8 strings at `ptrs`; none may be NULL.
///
/// # Safety
///
/// `ptrs` is NULL or points to `len` readable pointers, each NULL or
/// NUL-terminated, outliving `'a`.
unsafe fn string_array<'a>(ptrs: *const *const c_char, len: usize) -> Result<Vec<&'a str>, cb_status> {
    if ptrs.is_null() || len == 0 {
        return Err(cb_status::InvalidArgument);
    }
    // SAFETY: `len` readable pointers per the contract.
    let pointers = unsafe { std::slice::from_raw_parts(ptrs, len) };
    let mut strings = Vec::with_capacity(len);
    for &ptr in pointers {
        // SAFETY: each is NULL or NUL-terminated per the contract.
        strings.push(unsafe { optional_str(ptr) }?.ok_or(cb_status::InvalidArgument)?);
    }
    Ok(strings)
}

/// Parses the `len` node URLs at `nodes` and `namespace_` into a cluster's
/// shared state.
///
/// # Safety
///
/// `nodes` is NULL or points to `len` readable pointers, each NULL or
/// NUL-terminated; `namespace_` is NULL or NUL-terminated.
#[cfg(feature = "redis-cluster")]
unsafe fn cluster_state(
    nodes: *const *const c_char,
    len: usize,
    namespace_: *const c_char,
) -> Result<RedisState, cb_status> {
    // SAFETY: as this function's contract requires.
    let urls = unsafe { string_array(nodes, len) }?;
    // SAFETY: NULL or NUL-terminated per the contract.
    let namespace = unsafe { optional_str(namespace_) }?;
    let state = RedisState::connect_cluster(&urls).map_err(|_| cb_status::StorageError)?;
    Ok(in_namespace(state, namespace))
}

/// Shares the state of the breakers this builder makes through the Redis
/// Cluster reached at any of the `nodes_len` URLs at `nodes`
/// ("redis://host:port/" each; the slot map is learnt from the first that
/// answers), under `namespace_` (as for `cb_builder_set_redis`; its keys
/// stay on one slot). Replaces a URL set by `cb_builder_set_redis`; the
/// other Redis options apply alike. Nothing is contacted until
/// `cb_builder_build`. The strings are copied.
///
/// `CB_STATUS_INVALID_ARGUMENT` when `builder` or `nodes` is NULL,
/// `nodes_len` is 0, a node is NULL, or a string is not valid UTF-8;
/// `CB_STATUS_STORAGE_ERROR` when a node is not a Redis URL. Nothing changes
/// on an error. Only in a library built with the `redis-cluster` feature.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call; `nodes`
/// is NULL or points to `nodes_len` readable pointers, each NULL or a
/// NUL-terminated string; `namespace_` is NULL or a NUL-terminated string.
#[cfg(feature = "redis-cluster")]
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_cluster(
    builder: *mut cb_builder,
    nodes: *const *const c_char,
    nodes_len: usize,
    namespace_: *const c_char,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        // SAFETY: the pointers are as this function's contract requires.
        match unsafe { cluster_state(nodes, nodes_len, namespace_) } {
            Ok(state) => {
                builder.redis.state = Some(state);
                cb_status::Ok
            }
            Err(status) => status,
        }
    }
}

/// What `cb_builder_set_redis_sentinel` was given, as C passed it.
struct SentinelArgs {
    sentinels: *const *const c_char,
    sentinels_len: usize,
    master_name: *const c_char,
    username: *const c_char,
    password: *const c_char,
    db: u32,
    namespace: *const c_char,
}

impl SentinelArgs {
    /// Parses the arguments into a shared state.
    ///
    /// # Safety
    ///
    /// The pointers are as `cb_builder_set_redis_sentinel` requires.
    unsafe fn state(&self) -> Result<RedisState, cb_status> {
        // SAFETY: per this function's contract.
        let (sentinels, name, username, password, namespace) = unsafe {
            (
                string_array(self.sentinels, self.sentinels_len)?,
                optional_str(self.master_name)?.ok_or(cb_status::InvalidArgument)?,
                optional_str(self.username)?,
                optional_str(self.password)?,
                optional_str(self.namespace)?,
            )
        };
        if name.is_empty() {
            return Err(cb_status::InvalidArgument);
        }
        let mut master = SentinelMaster::new().db(self.db);
        if let Some(username) = username {
            master = master.username(username);
        }
        if let Some(password) = password {
            master = master.password(password);
        }
        let state = RedisState::connect_sentinel_with(&sentinels, name, master)
            .map_err(|_| cb_status::StorageError)?;
        Ok(in_namespace(state, namespace))
    }
}

/// Shares the state of the breakers this builder makes through the master
/// that Redis Sentinel names `master_name`, asking the `sentinels_len`
/// sentinels at `sentinels` (`redis://[user:password@]host:port/` each) in
/// turn, under `namespace_` (as for `cb_builder_set_redis`). The master is
/// logged in to as `master_username` with `master_password` (each NULL for
/// none) on database `master_db`; the sentinels' own credentials go in
/// their URLs. Each connection asks the sentinels afresh within the
/// connect and command timeouts, and follows a failover. Replaces a URL set
/// by `cb_builder_set_redis`; the other Redis options apply alike. Nothing
/// is contacted until `cb_builder_build`. The strings are copied.
///
/// `CB_STATUS_INVALID_ARGUMENT` when `builder`, `sentinels` or
/// `master_name` is NULL, `sentinels_len` is 0, a sentinel is NULL,
/// `master_name` is empty, or a string is not valid UTF-8;
/// `CB_STATUS_STORAGE_ERROR` when a sentinel is not a Redis URL. Nothing
/// changes on an error.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call;
/// `sentinels` is NULL or points to `sentinels_len` readable pointers, each
/// NULL or a NUL-terminated string; the other strings are NULL or
/// NUL-terminated.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cb_builder_set_redis_sentinel(
    builder: *mut cb_builder,
    sentinels: *const *const c_char,
    sentinels_len: usize,
    master_name: *const c_char,
    master_username: *const c_char,
    master_password: *const c_char,
    master_db: u32,
    namespace_: *const c_char,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let args = SentinelArgs {
            sentinels,
            sentinels_len,
            master_name,
            username: master_username,
            password: master_password,
            db: master_db,
            namespace: namespace_,
        };
        // SAFETY: the pointers are as this function's contract requires.
        match unsafe { args.state() } {
            Ok(state) => {
                builder.redis.state = Some(state);
                cb_status::Ok
            }
            Err(status) => status,
        }
    }
}

/// Makes a breaker whose state is shared, through the Redis at `redis_url`,
/// with every breaker of the same namespace: one logical breaker for a fleet
/// of processes (see the README's consistency model). Writes its handle to
/// `*out`; the handle takes the same functions as a `cb_new` one, and is
/// released with `cb_free`.
///
/// `redis_url` is like "redis://127.0.0.1:6379/" (a password as
/// "redis://user:password@host/"; "rediss://" for TLS, in a library built
/// with the `redis-tls` feature). `namespace_` is NULL (the
/// breaker's name, or "default") or a NUL-terminated UTF-8 name. Redis is
/// contacted now, within its timeouts (by default 100 ms per command, 250 ms
/// to connect; a `cb_builder` sets them and the fault policy); a Redis that
/// is down is not an error: the breaker decides locally, reconnects in the
/// background and re-syncs.
///
/// Returns `CB_STATUS_OK`; `CB_STATUS_INVALID_ARGUMENT` as `cb_new` does, or
/// when `redis_url` is NULL or either string is not valid UTF-8;
/// `CB_STATUS_STORAGE_ERROR` when `redis_url` is not a Redis URL. `*out` is
/// written only on `CB_STATUS_OK`.
///
/// # Safety
///
/// As `cb_new`; `redis_url` is NULL or a NUL-terminated string; `namespace_`
/// is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cb_new_redis(
    config: *const cb_config,
    redis_url: *const c_char,
    namespace_: *const c_char,
    out: *mut *mut cb_breaker,
) -> cb_status {
    ffi_panic_boundary! {
        try_non_null!(config);
        try_non_null!(redis_url);
        try_non_null!(out);
        // SAFETY: every pointer is as this function's contract requires.
        let built = unsafe { builder_from(config) }.and_then(|mut builder| {
            // SAFETY: as above.
            builder.redis.state = Some(unsafe { redis_state(redis_url, namespace_) }?);
            builder.build()
        });
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { write_handle(built, out) }
    }
}

/// Shares the state of the breakers this builder makes through the Redis at
/// `redis_url`, under `namespace_`, as `cb_new_redis` does.
/// `CB_STATUS_INVALID_ARGUMENT` when `builder` or `redis_url` is NULL or a
/// string is not valid UTF-8; `CB_STATUS_STORAGE_ERROR` when `redis_url` is
/// not a Redis URL. Nothing is contacted until `cb_builder_build`.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call;
/// `redis_url` and `namespace_` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis(
    builder: *mut cb_builder,
    redis_url: *const c_char,
    namespace_: *const c_char,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        // SAFETY: NULL or NUL-terminated per the contract.
        match unsafe { redis_state(redis_url, namespace_) } {
            Ok(state) => {
                builder.redis.state = Some(state);
                cb_status::Ok
            }
            Err(status) => status,
        }
    }
}

/// Sets what the breaker decides while Redis is unreachable (default
/// `CB_FAULT_POLICY_LOCAL`). `CB_STATUS_INVALID_ARGUMENT` for a NULL builder
/// or a value outside `cb_fault_policy`, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_fault_policy(
    builder: *mut cb_builder,
    policy: RawFaultPolicy,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let Some(policy) = policy.to_policy() else {
            return cb_status::InvalidArgument;
        };
        builder.redis.policy = Some(policy);
        cb_status::Ok
    }
}

/// Stores `ms` milliseconds (at least 1) in `field`.
fn set_ms(field: &mut Option<Duration>, ms: u64) -> cb_status {
    if ms == 0 {
        return cb_status::InvalidArgument;
    }
    *field = Some(Duration::from_millis(ms));
    cb_status::Ok
}

/// Sets the longest one call waits on Redis, in milliseconds (at least 1;
/// default 100). `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_command_timeout_ms(
    builder: *mut cb_builder,
    ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        set_ms(&mut try_mut_from_ptr!(builder).redis.command_timeout, ms)
    }
}

/// Sets the longest opening a connection to Redis may take, in milliseconds
/// (at least 1; default 250). `CB_STATUS_INVALID_ARGUMENT` for a NULL
/// builder or 0.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_connect_timeout_ms(
    builder: *mut cb_builder,
    ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        set_ms(&mut try_mut_from_ptr!(builder).redis.connect_timeout, ms)
    }
}

/// Sets how often the local mirror is refreshed from Redis in case an
/// announcement was lost, in milliseconds (at least 1; default 1000).
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_refresh_interval_ms(
    builder: *mut cb_builder,
    ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        set_ms(&mut try_mut_from_ptr!(builder).redis.refresh_interval, ms)
    }
}

/// Sets the longest wait between attempts to reconnect to Redis, in
/// milliseconds (at least 1; default 1000; the first wait is 10 ms,
/// doubling up to this). `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_max_backoff_ms(builder: *mut cb_builder, ms: u64) -> cb_status {
    ffi_panic_boundary! {
        set_ms(&mut try_mut_from_ptr!(builder).redis.max_backoff, ms)
    }
}

/// Makes `cb_builder_build` fail with `CB_STATUS_STORAGE_ERROR` when its
/// first sync with Redis fails, instead of starting degraded (the default:
/// a Redis that is down is a fault, reported, not an error).
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL builder.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_require_reachable(builder: *mut cb_builder) -> cb_status {
    ffi_panic_boundary! {
        try_mut_from_ptr!(builder).redis.require_reachable = true;
        cb_status::Ok
    }
}

/// Whether changes are announced and listened for by pub/sub: 1 (the
/// default) or 0, when processes learn of each other's changes only by the
/// periodic refresh. `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or a
/// value other than 0 and 1, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_redis_notifications(builder: *mut cb_builder, on: u32) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        match on {
            0 | 1 => {
                builder.redis.notifications = Some(on == 1);
                cb_status::Ok
            }
            _ => cb_status::InvalidArgument,
        }
    }
}

#[cfg(all(test, feature = "redis-cluster"))]
mod tests {
    use super::*;
    use crate::config::{cb_builder_free, cb_builder_new};
    use std::ptr;

    /// Bad input to the cluster setter is refused before anything is
    /// contacted, and changes nothing.
    #[test]
    fn cluster_nodes_are_checked() {
        let mut builder = ptr::null_mut();
        let good = [
            c"redis://127.0.0.1:7000/".as_ptr(),
            c"redis://127.0.0.1:7001/".as_ptr(),
        ];
        let with_null = [c"redis://127.0.0.1:7000/".as_ptr(), ptr::null()];
        let not_a_url = [c"not a url".as_ptr()];
        // SAFETY: valid pointers and lengths; the builder is freed once below.
        unsafe {
            assert_eq!(cb_builder_new(ptr::null(), &mut builder), cb_status::Ok);
            let set = |nodes: *const *const c_char, len| {
                cb_builder_set_redis_cluster(builder, nodes, len, ptr::null())
            };
            assert_eq!(set(ptr::null(), 2), cb_status::InvalidArgument);
            assert_eq!(set(good.as_ptr(), 0), cb_status::InvalidArgument);
            assert_eq!(set(with_null.as_ptr(), 2), cb_status::InvalidArgument);
            assert_eq!(set(not_a_url.as_ptr(), 1), cb_status::StorageError);
            assert!((*builder.cast::<crate::config::FfiBuilder>())
                .redis
                .state
                .is_none());
            assert_eq!(
                cb_builder_set_redis_cluster(ptr::null_mut(), good.as_ptr(), 2, ptr::null()),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_redis_cluster(builder, good.as_ptr(), 2, c"\xff".as_ptr()),
                cb_status::InvalidArgument
            );
            assert_eq!(set(good.as_ptr(), 2), cb_status::Ok);
            assert!((*builder.cast::<crate::config::FfiBuilder>())
                .redis
                .state
                .is_some());
            cb_builder_free(builder);
        }
    }
}

#[cfg(test)]
mod sentinel_tests {
    use super::*;
    use crate::config::{cb_builder_free, cb_builder_new, FfiBuilder};
    use std::ptr;

    /// Bad input to the Sentinel setter is refused before anything is
    /// contacted, and changes nothing.
    #[test]
    fn sentinel_arguments_are_checked() {
        let mut builder = ptr::null_mut();
        let good = [
            c"redis://127.0.0.1:26379/".as_ptr(),
            c"redis://127.0.0.1:26380/".as_ptr(),
        ];
        let with_null = [c"redis://127.0.0.1:26379/".as_ptr(), ptr::null()];
        let not_a_url = [c"not a url".as_ptr()];
        let m = c"m".as_ptr();
        let none = ptr::null();
        // SAFETY: valid pointers and lengths; the builder is freed once below.
        unsafe {
            assert_eq!(cb_builder_new(ptr::null(), &mut builder), cb_status::Ok);
            let set = |sentinels: *const *const c_char, len, name: *const c_char, password: *const c_char| {
                cb_builder_set_redis_sentinel(builder, sentinels, len, name, none, password, 0, none)
            };
            let state_is_set = || (*builder.cast::<FfiBuilder>()).redis.state.is_some();
            assert_eq!(set(ptr::null(), 2, m, none), cb_status::InvalidArgument);
            assert_eq!(set(good.as_ptr(), 0, m, none), cb_status::InvalidArgument);
            assert_eq!(set(with_null.as_ptr(), 2, m, none), cb_status::InvalidArgument);
            assert_eq!(set(good.as_ptr(), 2, none, none), cb_status::InvalidArgument);
            assert_eq!(
                set(good.as_ptr(), 2, c"".as_ptr(), none),
                cb_status::InvalidArgument
            );
            assert_eq!(
                set(good.as_ptr(), 2, c"\xff".as_ptr(), none),
                cb_status::InvalidArgument
            );
            assert_eq!(
                set(good.as_ptr(), 2, m, c"\xff".as_ptr()),
                cb_status::InvalidArgument
            );
            assert_eq!(set(not_a_url.as_ptr(), 1, m, none), cb_status::StorageError);
            assert!(!state_is_set());
            assert_eq!(
                cb_builder_set_redis_sentinel(ptr::null_mut(), good.as_ptr(), 2, m, none, none, 0, none),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_redis_sentinel(builder, good.as_ptr(), 2, m, none, none, 0, c"\xff".as_ptr()),
                cb_status::InvalidArgument
            );
            assert!(!state_is_set());
            assert_eq!(set(good.as_ptr(), 2, m, c"pw".as_ptr()), cb_status::Ok);
            assert!(state_is_set());
            cb_builder_free(builder);
        }
    }
}
