//! Debian's rsyslog as a syslog receiver: UDP, TCP (octet-counted or newline-framed, as it
//! tells them apart) and TLS (its own, with GnuTLS) on ports of their own, every message
//! written as a JSON object of the fields rsyslog parsed.

use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::tls::Pki;
use super::{free_port, missing, wait_until, PATIENCE};

/// rsyslogd in the foreground; killed when dropped.
pub struct Rsyslog {
    child: Child,
    pub udp_port: u16,
    pub tcp_port: u16,
    /// TLS, with `pki`'s server certificate.
    pub tls_port: u16,
    dir: TempDir,
}

/// What rsyslog parsed, each property JSON-escaped by rsyslog itself.
const TEMPLATE: &str = r#"{\"host\":\"%hostname:::json%\",\"app\":\"%app-name:::json%\",\"procid\":\"%procid:::json%\",\"msgid\":\"%msgid:::json%\",\"facility\":\"%syslogfacility-text:::json%\",\"severity\":\"%syslogseverity-text:::json%\",\"time\":\"%timereported:::date-rfc3339,json%\",\"sd\":\"%structured-data:::json%\",\"tag\":\"%syslogtag:::json%\",\"msg\":\"%msg:::json%\"}\n"#;

impl Rsyslog {
    /// True when rsyslogd and its GnuTLS driver are installed; without them the calling test
    /// fails, saying how to skip it on purpose.
    pub fn available() -> bool {
        let found = Command::new("rsyslogd").arg("-v").output().is_ok_and(|o| o.status.success())
            && std::path::Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists();
        if !found {
            missing("rsyslogd with its TLS driver (Debian's rsyslog and rsyslog-gnutls)");
        }
        found
    }

    pub fn start(pki: &Pki) -> Rsyslog {
        let dir = tempfile::tempdir().expect("rsyslog dir");
        let (udp_port, tcp_port, tls_port) = (free_port(), free_port(), free_port());
        let conf = format!(
            r#"global(workDirectory="{dir}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="spout" type="string" string="{TEMPLATE}")
action(type="omfile" file="{dir}/messages.json" template="spout")
"#,
            dir = dir.path().display(),
            ca = pki.path("ca.pem"),
            cert = pki.path("server.pem"),
            key = pki.path("server.key"),
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("rsyslog.conf");
        let child = Rsyslog::spawn(dir.path());
        let mut rsyslog = Rsyslog { child, udp_port, tcp_port, tls_port, dir };
        rsyslog.wait_listening();
        rsyslog
    }

    fn spawn(dir: &std::path::Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr")).expect("rsyslog log");
        Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd")
    }

    fn wait_listening(&mut self) {
        let (tcp, tls) = (self.tcp_port, self.tls_port);
        let listening = || {
            std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()
        };
        assert!(wait_until(PATIENCE, listening), "rsyslogd does not listen on {tcp} and {tls}:\n{}", self.log());
    }

    /// Stops rsyslogd as its service would (SIGTERM: it writes out what it took in) and starts it
    /// again on the same ports, appending to the same output.
    pub fn restart(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
        self.child = Rsyslog::spawn(self.dir.path());
        self.wait_listening();
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
