//! A Unix-socket proxy between spout and dockerd that can cut every connection on demand: the
//! daemon going away, as spout sees it, without restarting the real daemon under other tests.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How long to hold a request, by its request line (`GET /v1.41/containers/ID/json HTTP/1.1`).
pub type Delay = Arc<dyn Fn(&str) -> Option<Duration> + Send + Sync>;

pub struct DockerProxy {
    pub path: PathBuf,
    running: Arc<AtomicBool>,
    /// Both ends of every proxied connection, so they can be cut.
    conns: Arc<Mutex<Vec<UnixStream>>>,
}

/// A delay for inspects (`GET …/containers/ID/json`), not the list (`…/containers/json`).
pub fn inspects(by: Duration) -> Delay {
    Arc::new(move |line: &str| {
        let path = line.split(' ').nth(1).unwrap_or("");
        let inspect = path.contains("/containers/") && path.ends_with("/json") && !path.ends_with("/containers/json");
        inspect.then_some(by)
    })
}

/// A delay for log streams (`GET …/containers/ID/logs?…`).
pub fn log_streams(by: Duration) -> Delay {
    Arc::new(move |line: &str| line.split(' ').nth(1).unwrap_or("").contains("/logs?").then_some(by))
}

impl DockerProxy {
    /// Listens on `path` and forwards each connection to the real daemon.
    pub fn start(path: &Path) -> DockerProxy {
        DockerProxy::start_delaying(path, Arc::new(|_: &str| None))
    }

    /// Forwards like [`DockerProxy::start`], holding each request that `delay` names for as long
    /// as it says before passing it on: a daemon slow to answer.
    pub fn start_delaying(path: &Path, delay: Delay) -> DockerProxy {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let running = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (run, all) = (Arc::clone(&running), Arc::clone(&conns));
        std::thread::spawn(move || {
            while run.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(daemon) = UnixStream::connect(DOCKER_SOCKET) else { continue };
                if let (Ok(c2), Ok(d2)) = (client.try_clone(), daemon.try_clone()) {
                    all.lock().expect("lock").extend([c2, d2]);
                }
                pipe(&client, &daemon, Some(Arc::clone(&delay)));
                pipe(&daemon, &client, None);
            }
        });
        DockerProxy { path: path.to_owned(), running, conns }
    }

    /// Cuts every open connection, as a daemon restart would; new ones are still accepted.
    pub fn cut_all(&self) {
        for conn in self.conns.lock().expect("lock").drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Stops accepting and cuts everything.
    pub fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        self.cut_all();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pipe(from: &UnixStream, to: &UnixStream, delay: Option<Delay>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            // A request arrives in one read; its first line says what it is.
            if let Some(delay) = &delay {
                let head = String::from_utf8_lossy(&buf[..n.min(512)]);
                if let Some(by) = head.lines().next().and_then(|line| delay(line)) {
                    std::thread::sleep(by);
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
