//! What the tests of the lab, the steps and the CLI share (feature `test-support`,
//! never in the shipped binary): a lab configured the way every test writes it, and
//! moto, the reference AWS emulator the lab's AWS answers are checked against.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::LabConfig;

/// A lab in `dir` playing Infinispan `version` (14 or 15) with `faults` from the
/// start, written as `--fault` takes them.
///
/// # Panics
/// A fault that does not parse (a test's own mistake).
pub fn config(dir: &Path, faults: &[&str], version: u8) -> LabConfig {
    let mut config = LabConfig::new(dir)
        .with_faults(faults)
        .unwrap_or_else(|e| panic!("a test's fault does not parse: {e}"));
    config.shape.infinispan_version = version;
    config
}

/// moto's server (`python3 -m moto.server`, installed from PyPI by the test command)
/// on a free port of 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Start it and wait until it accepts connections.
    ///
    /// # Panics
    /// When moto is not installed or does not start within 30 s.
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on 127.0.0.1");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] (bash scripts/test.sh installs it)");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "moto did not start: is moto[server] installed? (bash scripts/test.sh installs it)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
