//! A network namespace of the test's own, joined to the host by a veth
//! pair on a private /30 (iproute2; needs root). Partitioning it removes
//! the namespace's address: packets to it go nowhere (no reply, no reset),
//! new connections wait in address resolution, as across a real partition.
//! Deleted on drop.

use std::process::Command;

pub struct Netns {
    pub name: String,
    host_if: String,
    ns_if: String,
    /// The namespace's address.
    pub addr: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn create() -> Netns {
        let id = std::process::id();
        let net = format!("10.231.{}", id % 250);
        let ns = Netns {
            name: format!("bbx-{id}"),
            host_if: format!("bbxh{id}"),
            ns_if: format!("bbxn{id}"),
            addr: format!("{net}.2"),
        };
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        ip(&["link", "set", &ns.ns_if, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{net}.1/30"), "dev", &ns.host_if]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns.heal();
        ns
    }

    /// `ip netns exec NAME`, to run a server inside.
    pub fn wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Cuts the namespace off: its address is gone, packets are dropped.
    pub fn partition(&self) {
        self.exec(&[
            "ip",
            "addr",
            "del",
            &format!("{}/30", self.addr),
            "dev",
            &self.ns_if,
        ]);
    }

    pub fn heal(&self) {
        self.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", self.addr),
            "dev",
            &self.ns_if,
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
