//! A real Redis Sentinel deployment: a master, its replica and three
//! sentinels (`redis-server CONF --sentinel`) watching it as `m` with
//! quorum 2; every one a `PrivateServer`, so each is killed on drop.

use super::{client, within, PrivateServer};
use std::time::Duration;

/// How long a sentinel waits before it calls a silent master down, and
/// how long a failover may take before it is tried again.
pub const DOWN_AFTER_MS: u64 = 500;
pub const FAILOVER_TIMEOUT_MS: u64 = 2000;

pub struct SentinelSet {
    pub master: PrivateServer,
    pub replica: PrivateServer,
    pub sentinels: Vec<PrivateServer>,
    /// The password of master and replica, if any.
    pub password: Option<String>,
}

impl SentinelSet {
    /// Without a password.
    pub fn start() -> SentinelSet {
        SentinelSet::start_with(None)
    }

    /// Master and replica with `requirepass` (and `masterauth`, so either
    /// may follow the other) when `password` is given; the sentinels are
    /// told it (`sentinel auth-pass`), and ask without one themselves.
    pub fn start_with(password: Option<&str>) -> SentinelSet {
        let mut auth: Vec<&str> = Vec::new();
        if let Some(pw) = password {
            auth.extend(["--requirepass", pw, "--masterauth", pw]);
        }
        // Replicas sync at once, not after the default 5 s.
        let mut options = vec!["--repl-diskless-sync-delay", "0"];
        options.extend(&auth);
        let master = PrivateServer::start_with(&options);
        let master_port = master.port.to_string();
        let mut replica_options = options.clone();
        replica_options.extend(["--replicaof", "127.0.0.1", &master_port]);
        let replica = PrivateServer::start_with(&replica_options);
        let down = format!("sentinel down-after-milliseconds m {DOWN_AFTER_MS}");
        let failover = format!("sentinel failover-timeout m {FAILOVER_TIMEOUT_MS}");
        let auth_pass = password.map(|pw| format!("sentinel auth-pass m {pw}"));
        let mut lines = vec![down.as_str(), failover.as_str()];
        lines.extend(auth_pass.as_deref());
        let sentinels = (0..3)
            .map(|_| PrivateServer::start_sentinel(master.port, &lines))
            .collect();
        let set = SentinelSet {
            master,
            replica,
            sentinels,
            password: password.map(str::to_owned),
        };
        set.wait_ready();
        set
    }

    /// The sentinels' URLs, in order.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(PrivateServer::url).collect()
    }

    /// The URL of a data server, with the password if any.
    pub fn data_url(&self, server: &PrivateServer) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/", server.port),
            None => server.url(),
        }
    }

    /// The port every running sentinel names as the master, if they agree.
    pub fn named_master(&self) -> Option<u16> {
        let mut ports = self.sentinels.iter().filter(|s| s.is_running()).map(|s| {
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg("m")
                .query::<(String, u16)>(&mut client(&s.url()))
                .ok()
                .map(|(_, port)| port)
        });
        let first = ports.next()??;
        ports.all(|p| p == Some(first)).then_some(first)
    }

    /// What `ROLE` says `server` is ("master", "slave").
    pub fn role(&self, server: &PrivateServer) -> String {
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query(&mut client(&self.data_url(server)))
            .expect("ROLE");
        redis::from_redis_value(&role[0]).expect("a role")
    }

    /// Waits until the replica synced and every sentinel knows the other
    /// two and the replica: a failover can then be agreed on.
    fn wait_ready(&self) {
        let synced = within(Duration::from_secs(10), || {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut client(&self.data_url(&self.replica)))
                .unwrap_or_default();
            info.contains("master_link_status:up")
        });
        assert!(synced.is_some(), "the replica synced");
        for sentinel in &self.sentinels {
            let known = within(Duration::from_secs(15), || {
                let mut conn = client(&sentinel.url());
                let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("SENTINELS")
                    .arg("m")
                    .query(&mut conn)
                    .unwrap_or_default();
                let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg("m")
                    .query(&mut conn)
                    .unwrap_or_default();
                others.len() == 2
                    && replicas.iter().any(|r| {
                        r.get("flags").map(String::as_str) == Some("slave")
                            && r.get("master-link-status").map(String::as_str) == Some("ok")
                    })
            });
            assert!(
                known.is_some(),
                "sentinel on port {} learnt of the others and of the replica",
                sentinel.port
            );
        }
        assert_eq!(
            self.named_master(),
            Some(self.master.port),
            "the sentinels name the master"
        );
    }

    /// Waits until every running sentinel names the replica and it answers
    /// as the master: the failover is over.
    pub fn wait_failed_over(&self, limit: Duration) {
        let done = within(limit, || {
            self.named_master() == Some(self.replica.port) && self.role(&self.replica) == "master"
        });
        assert!(
            done.is_some(),
            "the sentinels promoted the replica within {limit:?}"
        );
    }
}
