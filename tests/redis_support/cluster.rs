//! A real local Redis Cluster: `redis-server --cluster-enabled yes` per
//! node, joined by `redis-cli --cluster create`; every node a
//! `PrivateServer`, so each is killed on drop.

use super::{client, within, PrivateServer};
use std::process::Command;
use std::time::Duration;

pub struct Cluster {
    pub nodes: Vec<PrivateServer>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    pub slots: Vec<(u16, u16)>,
}

fn redis_cli() -> String {
    std::env::var("BREAKERBOX_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

impl Cluster {
    /// `masters` masters, each with `replicas` replicas, every slot covered.
    pub fn start(masters: usize, replicas: usize) -> Cluster {
        let nodes: Vec<PrivateServer> = (0..masters * (1 + replicas))
            .map(|_| {
                let bus = super::free_port().to_string();
                PrivateServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "{dir}/nodes.conf",
                    "--cluster-node-timeout",
                    "500",
                    "--cluster-port",
                    &bus,
                    // Replicas sync at once, not after the default 5 s.
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs (BREAKERBOX_REDIS_CLI or redis-cli on PATH)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// Waits (bounded) until every live node reports `cluster_state:ok` and
    /// agrees on who serves what.
    pub fn wait_until_ok(&self) {
        let ok = within(Duration::from_secs(30), || {
            let live: Vec<_> = self.nodes.iter().filter(|n| n.is_running()).collect();
            let views: Vec<String> = live
                .iter()
                .map(|n| {
                    let mut c = client(&n.url());
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query(&mut c)
                        .unwrap_or_default();
                    if !info.contains("cluster_state:ok") {
                        return String::new();
                    }
                    let mut masters: Vec<String> = self
                        .topology_from(n.port)
                        .into_iter()
                        .filter(|m| m.master && !m.failed)
                        .map(|m| format!("{}{:?}", m.id, m.slots))
                        .collect();
                    masters.sort();
                    masters.join(";")
                })
                .collect();
            !views[0].is_empty() && views.iter().all(|v| v == &views[0])
        });
        assert!(ok.is_some(), "the cluster did not settle: {:?}", self.topology());
    }

    /// `CLUSTER NODES` as the first live node sees it.
    pub fn topology(&self) -> Vec<Node> {
        let port = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node")
            .port;
        self.topology_from(port)
    }

    fn topology_from(&self, port: u16) -> Vec<Node> {
        let mut c = client(&format!("redis://127.0.0.1:{port}/"));
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut c)
            .expect("CLUSTER NODES");
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let port = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                Some(Node {
                    id: f[0].to_owned(),
                    port,
                    master: f[2].contains("master"),
                    failed: f[2].contains("fail"),
                    master_id: (f[3] != "-").then(|| f[3].to_owned()),
                    slots: f[8..]
                        .iter()
                        .filter(|s| !s.starts_with('['))
                        .filter_map(|s| {
                            let (a, b) = s.split_once('-').unwrap_or((s, s));
                            Some((a.parse().ok()?, b.parse().ok()?))
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// The master serving `slot`.
    pub fn owner(&self, slot: u16) -> Node {
        self.topology()
            .into_iter()
            .find(|n| n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .expect("every slot is served")
    }

    pub fn server(&self, port: u16) -> &PrivateServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    pub fn server_mut(&mut self, port: u16) -> &mut PrivateServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// A connection to the node on `port`.
    pub fn admin(&self, port: u16) -> redis::Connection {
        client(&self.server(port).url())
    }
}

/// `CLUSTER KEYSLOT key`, as the server computes it.
pub fn key_slot(conn: &mut redis::Connection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(conn)
        .expect("CLUSTER KEYSLOT")
}
