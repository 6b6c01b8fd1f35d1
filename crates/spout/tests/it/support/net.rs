//! Network faults the tests inject for real: a black-holed port (packets dropped by the firewall,
//! no reset), and a host name that moves (/etc/hosts). CI runs as root; both are undone when
//! their guard drops, even when the test fails.

use std::process::Command;
use std::sync::Mutex;

/// Drops every packet to and from a loopback TCP port, as a partition or a dead host would: no
/// reset, no answer. Removed on drop.
pub struct Blackhole {
    port: u16,
}

impl Blackhole {
    pub fn port(port: u16) -> Blackhole {
        for rule in rules(port) {
            iptables("-I", &rule);
        }
        Blackhole { port }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        for rule in rules(self.port) {
            iptables("-D", &rule);
        }
    }
}

fn rules(port: u16) -> [Vec<String>; 2] {
    let rule = |direction: &str| {
        ["OUTPUT", "-o", "lo", "-p", "tcp", direction, &port.to_string(), "-j", "DROP"].map(str::to_owned).to_vec()
    };
    [rule("--dport"), rule("--sport")]
}

fn iptables(action: &str, rule: &[String]) {
    // -w: wait for the lock that dockerd and parallel tests also take.
    let out =
        Command::new("iptables").arg("-w").arg(action).args(rule).output().expect("run iptables (CI runs as root)");
    assert!(out.status.success(), "iptables {action} {rule:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Tests edit /etc/hosts one at a time.
static HOSTS: Mutex<()> = Mutex::new(());
const HOSTS_FILE: &str = "/etc/hosts";

/// A name in /etc/hosts that a test can move from one address to another. Removed on drop.
pub struct HostsEntry {
    name: String,
}

impl HostsEntry {
    pub fn new(name: &str, ip: &str) -> HostsEntry {
        let entry = HostsEntry { name: name.to_owned() };
        entry.point_to(ip);
        entry
    }

    /// Makes the name resolve to `ip` (written in place: /etc/hosts may be a bind mount).
    pub fn point_to(&self, ip: &str) {
        self.edit(Some(ip));
    }

    fn edit(&self, ip: Option<&str>) {
        let _one_at_a_time = HOSTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = std::fs::read_to_string(HOSTS_FILE).expect("read /etc/hosts");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1) != Some(self.name.as_str()))
            .map(str::to_owned)
            .collect();
        if let Some(ip) = ip {
            lines.push(format!("{ip} {}", self.name));
        }
        std::fs::write(HOSTS_FILE, lines.join("\n") + "\n").expect("write /etc/hosts (CI runs as root)");
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        self.edit(None);
    }
}
