//! Helpers shared by the Redis suites. They need a real redis-server:
//! `scripts/test-redis.sh` starts one and exports its URL in
//! `BREAKERBOX_REDIS_URL` (and the server binary in `BREAKERBOX_REDIS_SERVER`
//! for the fault tests, which start private servers they can kill).
#![allow(dead_code)]

use breakerbox::redis::{Script, StorageError, StorageErrorKind, Subscriber, Transport};
use breakerbox::{CircuitBreaker, Listener, State};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const URL_VAR: &str = "BREAKERBOX_REDIS_URL";
pub const SERVER_VAR: &str = "BREAKERBOX_REDIS_SERVER";

/// The shared test server's URL. Missing is a failure, never a skip.
pub fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set: run these tests with scripts/test-redis.sh, which starts a redis-server"
        )
    })
}

/// The redis-server binary for tests that start their own.
pub fn server_binary() -> PathBuf {
    std::env::var_os(SERVER_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{SERVER_VAR} is not set: run these tests with scripts/test-redis.sh"))
}

/// A namespace no other test (or earlier run) uses.
pub fn unique_namespace(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn client(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("valid URL");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("the test Redis answers");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn
}

/// The fleet state's fields as stored in Redis (empty when missing).
pub fn stored_state(
    conn: &mut redis::Connection,
    namespace: &str,
) -> std::collections::HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(format!("breakerbox:{{{namespace}}}:state"))
        .query(conn)
        .expect("HGETALL")
}

/// What a listener saw.
#[derive(Default)]
pub struct Seen {
    pub transitions: Mutex<Vec<(State, State)>>,
    pub storage_errors: Mutex<Vec<String>>,
}

impl Seen {
    pub fn transitions(&self) -> Vec<(State, State)> {
        self.transitions.lock().unwrap().clone()
    }

    pub fn storage_error_count(&self) -> usize {
        self.storage_errors.lock().unwrap().len()
    }
}

pub struct Recorder(pub Arc<Seen>);

impl Listener for Recorder {
    fn state_change(&self, _b: &CircuitBreaker, from: State, to: State) {
        self.0.transitions.lock().unwrap().push((from, to));
    }

    fn storage_error(&self, _b: &CircuitBreaker, error: &dyn std::error::Error) {
        self.0.storage_errors.lock().unwrap().push(error.to_string());
    }
}

/// Polls `check` every millisecond until it holds or `limit` passes;
/// returns how long it took, or None.
pub fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a call is admitted now (a success is recorded if so).
pub fn admits(b: &CircuitBreaker) -> bool {
    match b.try_acquire() {
        Ok(permit) => {
            let _ = permit.ignore();
            true
        }
        Err(_) => false,
    }
}

/// Leaves the pid of a server a test started where the suite's script can
/// stop it should the test process die before its drop
/// (`BREAKERBOX_TEST_PIDS`, a directory; unset: nothing to do).
pub fn register_pid(pid: u32) {
    if let Some(dir) = std::env::var_os("BREAKERBOX_TEST_PIDS") {
        let _ = std::fs::write(PathBuf::from(dir).join(pid.to_string()), pid.to_string());
    }
}

/// A redis-server of a test's own, on a free loopback port, persistence off
/// unless a test saves explicitly; killed on drop.
pub struct PrivateServer {
    pub port: u16,
    /// The address it binds and its URL names (127.0.0.1 unless started
    /// in a network namespace).
    pub host: String,
    /// A command the server runs under (`ip netns exec NS`), if any.
    wrapper: Vec<String>,
    dir: PathBuf,
    /// Options beyond the defaults (auth, TLS, cluster mode, ...).
    extra: Vec<String>,
    /// Arguments before the options (a sentinel's config file and
    /// `--sentinel`).
    leading: Vec<String>,
    /// The log line that says it is ready.
    ready: &'static str,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl PrivateServer {
    pub fn start() -> PrivateServer {
        PrivateServer::start_with(&[])
    }

    /// A server with options of its own (`["--requirepass", "pw"]`); `{dir}`
    /// and `{port}` in an option stand for the server's directory and port.
    pub fn start_with(extra: &[&str]) -> PrivateServer {
        PrivateServer::start_in(&[], "127.0.0.1", extra)
    }

    /// A server run under `wrapper` (`["ip", "netns", "exec", ns]`), bound
    /// to `host`.
    pub fn start_in(wrapper: &[&str], host: &str, extra: &[&str]) -> PrivateServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("breakerbox-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("server dir");
        let extra = extra
            .iter()
            .map(|o| {
                o.replace("{dir}", &dir.to_string_lossy())
                    .replace("{port}", &port.to_string())
            })
            .collect();
        let mut server = PrivateServer {
            port,
            host: host.to_owned(),
            wrapper: wrapper.iter().map(|w| (*w).to_owned()).collect(),
            dir,
            extra,
            leading: Vec::new(),
            ready: "Ready to accept connections",
            child: None,
        };
        server.launch();
        server
    }

    /// A sentinel (`redis-server CONF --sentinel`) watching the master at
    /// 127.0.0.1:`master_port` as `m` (quorum 2), with `lines` added to its
    /// config file.
    pub fn start_sentinel(master_port: u16, lines: &[&str]) -> PrivateServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("breakerbox-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        let mut text = format!("sentinel monitor m 127.0.0.1 {master_port} 2\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&conf, text).expect("sentinel config");
        let mut server = PrivateServer {
            port,
            host: "127.0.0.1".to_owned(),
            wrapper: Vec::new(),
            dir,
            extra: Vec::new(),
            leading: vec![conf.to_string_lossy().into_owned(), "--sentinel".to_owned()],
            ready: "+monitor master",
            child: None,
        };
        server.launch();
        server
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.host, self.port)
    }

    fn launch(&mut self) {
        let log = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log);
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(server_binary());
                c
            }
            None => Command::new(server_binary()),
        };
        let child = command
            .args(&self.leading)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", &self.host])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dbfilename", "dump.rdb"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        register_pid(child.id());
        self.child = Some(child);
        // Ready whatever the options (auth, TLS only, cluster): its log says so.
        let ready = within(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(self.ready))
        });
        assert!(
            ready.is_some(),
            "private redis-server on port {} did not start: {}",
            self.port,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// SIGKILL: the server vanishes mid-run.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory (empty unless a dump was saved).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Writes the dataset to disk, so that a restart loads it.
    pub fn save(&self) {
        let mut conn = client(&self.url());
        let _: String = redis::cmd("SAVE").query(&mut conn).expect("SAVE");
    }

    /// Deletes the saved dataset, so that a restart comes up empty.
    pub fn forget_dump(&self) {
        let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// SIGSTOP: the server holds connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server would ignore SIGKILL's cleanup; wake it first.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Script runs the server at `url` was asked for, from INFO commandstats:
/// all of them, or (`completed`) less the failed ones, such as a NOSCRIPT
/// answer or a refused write.
pub fn script_runs(url: &str, completed: bool) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut client(url))
        .unwrap();
    let field = |line: &str, name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map_or(0, |v| v.parse().unwrap())
    };
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .map(|l| field(l, "calls") - if completed { field(l, "failed_calls") } else { 0 })
        .sum()
}

/// Threads of this process named like the watcher ("breakerbox-redis",
/// cut to the kernel's 15 characters).
pub fn watchers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "breakerbox-redi")
        })
        .count()
}

/// A host's own client as a fleet transport, written outside the crate:
/// `EVAL` with the script's source on one connection, no pub/sub. It can
/// be cut off from Redis, panic once on the watcher thread, and run a hook
/// just before the first `record` script it carries.
pub struct HostClient {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    pub evals: AtomicU64,
    pub cut: AtomicBool,
    pub panic_on_watcher: AtomicBool,
    pub before_record: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl HostClient {
    pub fn new(url: &str) -> Arc<HostClient> {
        Arc::new(HostClient {
            client: redis::Client::open(url).unwrap(),
            conn: Mutex::new(None),
            evals: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            panic_on_watcher: AtomicBool::new(false),
            before_record: Mutex::new(None),
        })
    }
}

impl Transport for HostClient {
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        self.evals.fetch_add(1, Ordering::Relaxed);
        let on_watcher = std::thread::current().name() == Some("breakerbox-redis");
        if on_watcher && self.panic_on_watcher.swap(false, Ordering::SeqCst) {
            panic!("host client bug");
        }
        if args.first().map(String::as_str) == Some("record") {
            let hook = self.before_record.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        if self.cut.load(Ordering::SeqCst) {
            return Err(StorageError::new(StorageErrorKind::Unreachable, &"cut off"));
        }
        let fault = |e: redis::RedisError| StorageError::new(StorageErrorKind::Unreachable, &e);
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.client.get_connection_with_timeout(timeout).map_err(fault)?);
        }
        let conn = guard.as_mut().unwrap();
        conn.set_read_timeout(Some(timeout)).map_err(fault)?;
        redis::cmd("EVAL")
            .arg(script.source())
            .arg(1)
            .arg(key)
            .arg(args)
            .query(conn)
            .map_err(|e| {
                *guard = None;
                fault(e)
            })
    }

    fn subscriber(&self, _timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        Err(StorageError::new(
            StorageErrorKind::Unreachable,
            &"this host has no pub/sub",
        ))
    }

    fn endpoint(&self) -> String {
        "host-client".into()
    }
}

mod cluster;
mod deploy;
pub mod netns;
pub mod proxy;
mod sentinel;
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use deploy::*;
#[allow(unused_imports)]
pub use sentinel::*;
