//! Separate hosts on one machine, for tests of what crosses a network: Linux network
//! namespaces (`ip netns`), each with its own loopback and interfaces, joined by veth links
//! the test makes, cuts and heals. Everything made is removed when dropped.
//!
//! Needs root (or CAP_NET_ADMIN) and a kernel that allows namespaces;
//! [`Network::create`] says why when it cannot, so that a test can skip with that reason.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The namespaces and links of one test.
#[derive(Debug)]
pub struct Network {
    prefix: String,
    hosts: Vec<String>,
    /// The links made, each with its own /30 subnet.
    links: Vec<Link>,
    /// A base for this network's subnets, apart from other networks of this process.
    subnet_base: u32,
}

/// A point-to-point link between two hosts (or a host and this test's own namespace).
#[derive(Debug, Clone)]
pub struct Link {
    /// The two interface names, each in its namespace (`None`: the test's own).
    ends: [(Option<String>, String); 2],
    /// The two addresses.
    addresses: [String; 2],
}

impl Link {
    /// The address of end `i` (0 or 1).
    pub fn address(&self, i: usize) -> &str {
        &self.addresses[i]
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Network {
    /// An empty network; fails (with the reason) where namespaces cannot be made here.
    pub fn create() -> Result<Network, String> {
        static NETWORKS: AtomicU32 = AtomicU32::new(0);
        let n = NETWORKS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let network = Network {
            prefix: format!("tq{}n{n}", pid % 100_000),
            hosts: Vec::new(),
            links: Vec::new(),
            subnet_base: (pid % 200) * 4 + n % 4,
        };
        // A probe: the reason a test skips, if any.
        let probe = format!("{}probe", network.prefix);
        ip(&["netns", "add", &probe])?;
        ip(&["netns", "del", &probe])?;
        Ok(network)
    }

    /// A new host, `name`, with its loopback up; returns its namespace's name.
    pub fn host(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &ns]).unwrap_or_else(|e| panic!("{e}"));
        ip(&["-n", &ns, "link", "set", "lo", "up"]).unwrap_or_else(|e| panic!("{e}"));
        self.hosts.push(ns.clone());
        ns
    }

    /// A link between host `a` and host `b` (a namespace from [`host`](Self::host), or
    /// `None` for the test's own), each end with an address of its own /30 subnet.
    pub fn link(&mut self, a: Option<&str>, b: Option<&str>) -> Link {
        let index = self.links.len() as u32;
        let name = format!("{}l{index}", self.prefix);
        let ends = [
            (a.map(str::to_owned), format!("{name}a")),
            (b.map(str::to_owned), format!("{name}b")),
        ];
        let (octet2, octet3) = (200 + self.subnet_base / 250, self.subnet_base % 250);
        let subnet = index * 4;
        let addresses = [
            format!("10.{octet2}.{octet3}.{}", subnet + 1),
            format!("10.{octet2}.{octet3}.{}", subnet + 2),
        ];
        ip(&[
            "link", "add", &ends[0].1, "type", "veth", "peer", "name", &ends[1].1,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        for ((ns, interface), address) in ends.iter().zip(&addresses) {
            if let Some(ns) = ns {
                ip(&["link", "set", interface, "netns", ns]).unwrap_or_else(|e| panic!("{e}"));
            }
            let cidr = format!("{address}/30");
            ip(&with_ns(ns, &["addr", "add", &cidr, "dev", interface]))
                .unwrap_or_else(|e| panic!("{e}"));
            ip(&with_ns(ns, &["link", "set", interface, "up"])).unwrap_or_else(|e| panic!("{e}"));
        }
        let link = Link { ends, addresses };
        self.links.push(link.clone());
        link
    }

    /// Cuts `link`: both ends down, so nothing crosses it (no reset either: the far side
    /// just goes silent, as behind a failed switch).
    pub fn cut(&self, link: &Link) {
        for (ns, interface) in &link.ends {
            ip(&with_ns(ns, &["link", "set", interface, "down"])).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Heals a cut `link`.
    pub fn heal(&self, link: &Link) {
        for (ns, interface) in &link.ends {
            ip(&with_ns(ns, &["link", "set", interface, "up"])).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// `program` to run in host `ns`: `ip netns exec <ns> <program>`.
    pub fn command(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }
}

fn with_ns<'a>(ns: &'a Option<String>, args: &[&'a str]) -> Vec<&'a str> {
    match ns {
        Some(ns) => [&["-n", ns.as_str()][..], args].concat(),
        None => args.to_vec(),
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for link in &self.links {
            // Deleting one end deletes both; an end in a deleted namespace is gone already.
            let (ns, interface) = &link.ends[0];
            let _ = ip(&with_ns(ns, &["link", "del", interface]));
        }
        for ns in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
