//! TLS peers for the tests: a CA with a server and a client certificate (made with rcgen), and
//! Debian's nginx terminating TLS in front of a test receiver.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use super::{free_port, missing, wait_until, PATIENCE};

/// A CA, a certificate for `localhost` and 127.0.0.1 signed by it (the server's), and one for a
/// client, each with its key, as PEM files.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("pki dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "spout test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("ca");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        for (name, names) in [("server", vec!["localhost".to_owned(), "127.0.0.1".to_owned()]), ("client", vec![])] {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(names).expect("params");
            params.distinguished_name.push(rcgen::DnType::CommonName, format!("spout test {name}"));
            let cert = params.signed_by(&key, &ca).expect("cert");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).expect("write");
        }
        Pki { dir }
    }

    /// The path of one of the files: ca.pem, server.pem, server.key, client.pem, client.key.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// nginx taking TLS on a port of its own and passing what it decrypts to a receiver; killed
/// when dropped.
pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

/// Whether a TLS server asks the client for a certificate signed by the test CA.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    NotAsked,
    Required,
}

impl Nginx {
    /// True when Debian's nginx, with its stream module, is installed; without it the calling
    /// test fails, saying how to skip it on purpose.
    pub fn available() -> bool {
        let found = Path::new(MODULE).exists() && Command::new("nginx").arg("-v").output().is_ok();
        if !found {
            missing("nginx with its stream module (Debian's nginx and libnginx-mod-stream)");
        }
        found
    }

    /// nginx on a free port, with `pki`'s server certificate, TLS 1.2 and 1.3, passing to
    /// `to_port` on 127.0.0.1.
    pub fn tls_in_front(pki: &Pki, to_port: u16, clients: ClientCerts) -> Nginx {
        Nginx::tls_on(free_port(), pki, to_port, clients)
    }

    /// The same, on a given port (to stand in for an nginx that stopped).
    pub fn tls_on(port: u16, pki: &Pki, to_port: u16, clients: ClientCerts) -> Nginx {
        let dir = tempfile::tempdir().expect("nginx dir");
        let verify = match clients {
            ClientCerts::NotAsked => String::new(),
            ClientCerts::Required => format!("ssl_verify_client on; ssl_client_certificate {};", pki.path("ca.pem")),
        };
        // One process (no master and workers), in the foreground: killing it leaves nothing.
        let conf = format!(
            "daemon off; master_process off; pid {dir}/nginx.pid; error_log stderr info;
             load_module {MODULE};
             events {{}}
             stream {{
                 server {{
                     listen 127.0.0.1:{port} ssl;
                     ssl_protocols TLSv1.2 TLSv1.3;
                     ssl_certificate {cert}; ssl_certificate_key {key};
                     {verify}
                     proxy_pass 127.0.0.1:{to_port};
                 }}
             }}",
            dir = dir.path().display(),
            cert = pki.path("server.pem"),
            key = pki.path("server.key"),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let log = std::fs::File::create(dir.path().join("stderr")).expect("nginx log");
        let child = Command::new("nginx")
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, port, dir };
        let listening = wait_until(PATIENCE, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(listening, "nginx does not listen on {port}:\n{}", nginx.log());
        nginx
    }

    /// What nginx said.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";
