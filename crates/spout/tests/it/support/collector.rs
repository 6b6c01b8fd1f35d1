//! `spout receive` as a child process: GELF over UDP and TCP on one port, HTTP on another, its
//! API on a third, writing what it receives to a file of its own; killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::Value;

use super::{free_port, http_get, peak_rss_kib, wait_until, PATIENCE};

pub struct Collector {
    child: Child,
    /// The UDP and the TCP input's port.
    pub gelf: u16,
    pub http: u16,
    pub api: u16,
    out: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Starts `spout receive` on free loopback ports with `args` added, and waits until it answers.
    pub fn start(args: &[&str]) -> Collector {
        let dir = tempfile::tempdir().expect("dir");
        let (gelf, http, api) = (free_port(), free_port(), free_port());
        let (out, stderr) = (dir.path().join("out.jsonl"), dir.path().join("stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_spout"))
            .arg("receive")
            .args(["--udp", &format!("127.0.0.1:{gelf}"), "--tcp", &format!("127.0.0.1:{gelf}")])
            .args(["--http", &format!("127.0.0.1:{http}"), "--api", &format!("127.0.0.1:{api}")])
            .arg("--out")
            .arg(&out)
            .args(args)
            .env("RUST_LOG", "info,spout=debug")
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start spout receive");
        let collector = Collector { child, gelf, http, api, out, stderr, _dir: dir };
        let up = wait_until(PATIENCE, || http_get(api, "/health").is_some_and(|(code, _)| code == 200));
        assert!(up, "spout receive never answered; stderr:\n{}", collector.stderr());
        collector
    }

    /// Every message written so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // A line still being written is not a message yet.
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The messages whose `_container_id` is `id`.
    pub fn of(&self, id: &str) -> Vec<Value> {
        self.messages().into_iter().filter(|m| m["_container_id"] == id).collect()
    }

    /// Waits until `n` messages satisfy `wanted` and returns those there are then.
    pub fn wait_for(&self, n: usize, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        let count = || self.messages().into_iter().filter(|m| wanted(m)).count();
        wait_until(PATIENCE, || count() >= n);
        self.messages().into_iter().filter(|m| wanted(m)).collect()
    }

    /// The `short_message`s of container `id`, once `n` have arrived (or the patience ran out).
    pub fn lines_of(&self, id: &str, n: usize) -> Vec<String> {
        self.wait_for(n, |m| m["_container_id"] == id)
            .iter()
            .map(|m| m["short_message"].as_str().unwrap_or("<not a string>").to_owned())
            .collect()
    }

    /// The value of one series of /metrics, e.g. `spout_receive_messages_total{input="udp"}`; 0
    /// when it is not there.
    pub fn metric(&self, series: &str) -> u64 {
        let (_, text) = http_get(self.api, "/metrics").expect("/metrics");
        text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok()).map_or(0, |v| v as u64)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.child.id())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// SIGTERM, then waits (at most `PATIENCE`) for it to exit; returns its exit code, if it did.
    pub fn stop(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let exited = wait_until(PATIENCE, || !self.is_running());
        exited.then(|| self.child.wait().ok()?.code()).flatten()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
