//! A small fault-injecting TCP proxy between a breaker and Redis, on
//! loopback: pass, cut off (a black hole: bytes are held, never delivered,
//! no connection is closed), added latency, and seeded stalls on a share of
//! the reads (what packet loss looks like above TCP: a retransmission
//! wait). Re-pointing it at another server drops every connection, as a
//! virtual IP that moves does.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// What the link does to the bytes that cross it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Pass,
    /// Nothing crosses; connections stay open, new ones are accepted and
    /// never answered.
    CutOff,
    /// Every chunk waits this long, each way.
    Latency(Duration),
    /// This share of chunks (per mille) waits `stall` before it crosses.
    Stalls {
        per_mille: u64,
        stall: Duration,
    },
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    fault: Mutex<Fault>,
    /// Bumped on re-point: connections of an older epoch close.
    epoch: AtomicU64,
    rng: Mutex<u64>,
    stop: AtomicBool,
    /// Connections accepted so far.
    accepted: AtomicU64,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            fault: Mutex::new(Fault::Pass),
            epoch: AtomicU64::new(0),
            rng: Mutex::new(seed),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || accept_loop(listener, s));
        Proxy { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.addr.port())
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Sends new connections to `upstream` and closes the current ones.
    pub fn repoint(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = upstream;
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Connections accepted so far (a reconnect storm shows here).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Acquire)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// How often the proxy's threads look at their stop and epoch flags.
const POLL: Duration = Duration::from_millis(5);

fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    while !s.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((client, _)) => {
                s.accepted.fetch_add(1, Ordering::AcqRel);
                let s = Arc::clone(&s);
                std::thread::spawn(move || connection(client, s));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn connection(client: TcpStream, s: Arc<Shared>) {
    let epoch = s.epoch.load(Ordering::Acquire);
    let upstream = *s.upstream.lock().unwrap();
    // Cut off: accepted, never answered, until healed or closed.
    while *s.fault.lock().unwrap() == Fault::CutOff {
        if s.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        std::thread::sleep(POLL);
    }
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) else {
        return;
    };
    for (from, to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        let s = Arc::clone(&s);
        std::thread::spawn(move || pump(from, to, s, epoch));
    }
}

/// Copies `from` to `to` through the current fault: a reader queues each
/// chunk with the time it may leave, a writer delivers it then.
fn pump(mut from: TcpStream, to: TcpStream, s: Arc<Shared>, epoch: u64) {
    from.set_read_timeout(Some(POLL)).unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer_shared = Arc::clone(&s);
    let mut writer_to = to.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let s = writer_shared;
        for (due, chunk) in rx {
            loop {
                if s.epoch.load(Ordering::Acquire) != epoch {
                    return;
                }
                let held = *s.fault.lock().unwrap() == Fault::CutOff;
                let now = Instant::now();
                if !held && now >= due {
                    break;
                }
                std::thread::sleep(if held { POLL } else { (due - now).min(POLL) });
            }
            if writer_to.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 16 * 1024];
    loop {
        if s.epoch.load(Ordering::Acquire) != epoch {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let delay = match *s.fault.lock().unwrap() {
                    Fault::Latency(d) => d,
                    Fault::Stalls { per_mille, stall } => {
                        let mut rng = s.rng.lock().unwrap();
                        *rng = rng
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        if (*rng >> 33) % 1000 < per_mille {
                            stall
                        } else {
                            Duration::ZERO
                        }
                    }
                    Fault::Pass | Fault::CutOff => Duration::ZERO,
                };
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
