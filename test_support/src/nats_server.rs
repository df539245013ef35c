//! A real `nats-server` with JetStream on a free loopback port, killed on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::HarnessError;
use crate::ports::free_tcp_port;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Certificate and key files for a TLS-enabled server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
}

/// How to configure the server.
#[derive(Debug, Clone, Default)]
pub struct NatsServerOptions {
    /// Require this user and password.
    pub user_password: Option<(String, String)>,
    /// Serve TLS with these files.
    pub tls: Option<TlsFiles>,
    /// More configuration text (e.g. an `authorization` block with users and permissions).
    pub extra_config: Option<String>,
    /// Environment of the server process (values the configuration refers to as `$NAME`).
    pub env: Vec<(String, String)>,
}

/// A running `nats-server` process with its own port and JetStream store directory.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    options: NatsServerOptions,
    dir: TempDir,
    child: Option<Child>,
}

/// Locates `nats-server`: `BEVYGAP_NATS_SERVER`, then `PATH`.
pub fn find_nats_server() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os("BEVYGAP_NATS_SERVER") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::NatsServerMissing(format!(
                "BEVYGAP_NATS_SERVER={} is not a file",
                path.display()
            )))
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::NatsServerMissing("not on PATH".into()))
}

impl NatsServer {
    /// Starts a plain-text server without authentication.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(NatsServerOptions::default())
    }

    /// Starts a server with the given options and waits until it accepts connections.
    pub fn start_with(options: NatsServerOptions) -> Result<Self, HarnessError> {
        let binary = find_nats_server()?;
        let dir = tempfile::Builder::new().prefix("bevygap-nats-").tempdir()?;
        let port = free_tcp_port()?;
        let mut server = Self {
            binary,
            port,
            options,
            dir,
            child: None,
        };
        server.write_config()?;
        server.spawn()?;
        Ok(server)
    }

    /// The address clients connect to, `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (like a crash: no lame-duck mode) without restarting it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port with the same JetStream data.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.spawn()
    }

    /// What the server has logged so far (permission violations, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats.conf")
    }

    fn write_config(&self) -> Result<(), HarnessError> {
        let store = self.dir.path().join("jetstream");
        let mut config = format!(
            "listen: \"127.0.0.1:{}\"\njetstream {{ store_dir: {} }}\n",
            self.port,
            quote(&store)
        );
        if let Some((user, password)) = &self.options.user_password {
            config.push_str(&format!(
                "authorization {{ user: {}, password: {} }}\n",
                quote(Path::new(user)),
                quote(Path::new(password))
            ));
        }
        if let Some(tls) = &self.options.tls {
            config.push_str(&format!(
                "tls {{ cert_file: {}, key_file: {} }}\n",
                quote(&tls.cert),
                quote(&tls.key)
            ));
        }
        if let Some(extra) = &self.options.extra_config {
            config.push_str(extra);
            config.push('\n');
        }
        std::fs::write(self.config_path(), config)?;
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let log = std::fs::File::create(self.dir.path().join("nats.log"))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| HarnessError::StartFailed(format!("{}: {e}", self.binary.display())))?;
        self.child = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default();
                return Err(HarnessError::StartFailed(format!(
                    "exited with {status}: {log}"
                )));
            }
            if Instant::now() > deadline {
                return Err(HarnessError::StartFailed(format!(
                    "no connection on {addr} within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn quote(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
