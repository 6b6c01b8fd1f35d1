//! Debian's rsyslog as a syslog receiver: UDP and TCP (octet-counted or newline-framed, as it
//! tells them apart) on ports of their own, every message written as a JSON object of the
//! fields rsyslog parsed.

use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::{free_port, missing, wait_until, PATIENCE};

/// rsyslogd in the foreground; killed when dropped.
pub struct Rsyslog {
    child: Child,
    pub udp_port: u16,
    pub tcp_port: u16,
    dir: TempDir,
}

/// What rsyslog parsed, each property JSON-escaped by rsyslog itself.
const TEMPLATE: &str = r#"{\"host\":\"%hostname:::json%\",\"app\":\"%app-name:::json%\",\"procid\":\"%procid:::json%\",\"msgid\":\"%msgid:::json%\",\"facility\":\"%syslogfacility-text:::json%\",\"severity\":\"%syslogseverity-text:::json%\",\"time\":\"%timereported:::date-rfc3339,json%\",\"sd\":\"%structured-data:::json%\",\"tag\":\"%syslogtag:::json%\",\"msg\":\"%msg:::json%\"}\n"#;

impl Rsyslog {
    /// True when rsyslogd is installed; without it the calling test fails, saying how to skip it
    /// on purpose.
    pub fn available() -> bool {
        let found = Command::new("rsyslogd").arg("-v").output().is_ok_and(|o| o.status.success());
        if !found {
            missing("rsyslogd (Debian's rsyslog)");
        }
        found
    }

    pub fn start() -> Rsyslog {
        let dir = tempfile::tempdir().expect("rsyslog dir");
        let (udp_port, tcp_port) = (free_port(), free_port());
        let conf = format!(
            r#"global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="spout" type="string" string="{TEMPLATE}")
action(type="omfile" file="{dir}/messages.json" template="spout")
"#,
            dir = dir.path().display()
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("rsyslog.conf");
        let log = std::fs::File::create(dir.path().join("stderr")).expect("rsyslog log");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd");
        let rsyslog = Rsyslog { child, udp_port, tcp_port, dir };
        let listening = wait_until(PATIENCE, || std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_ok());
        assert!(listening, "rsyslogd does not listen on {tcp_port}:\n{}", rsyslog.log());
        rsyslog
    }

    /// Every message received so far, as rsyslog parsed it.
    pub fn messages(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("messages.json")).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap_or(Value::String(line.to_owned()))).collect()
    }

    /// The messages of one facility whose app name (or tag) is `app`, once `n` of them arrived
    /// and no more came for a moment.
    pub fn settle(&self, facility: &str, app: &str, n: usize) -> Vec<Value> {
        let of = || -> Vec<Value> {
            self.messages().into_iter().filter(|m| m["facility"] == facility && m["app"] == app).collect()
        };
        wait_until(PATIENCE, || of().len() >= n);
        std::thread::sleep(std::time::Duration::from_millis(500));
        of()
    }

    /// What rsyslogd said.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
