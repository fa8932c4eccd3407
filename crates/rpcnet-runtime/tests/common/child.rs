//! What the tests that kill a process with SIGKILL share: a temporary cluster directory, and a
//! child process that is this very test binary re-run for one ignored test, which prints
//! `READY <address> ...` once it listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// A fresh directory under the system temp dir (`rpcnet-<tag>-<pid>`), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("rpcnet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Re-runs this test binary for the ignored test `test` alone, with `env` set to `dir`, and
/// waits (at most 30 s) for its `READY` line: returns the child (killed on drop) and the
/// addresses it printed.
pub async fn spawn_ready(
    test: &str,
    env: &str,
    dir: &Path,
) -> (tokio::process::Child, Vec<SocketAddr>) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addrs = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest prints `test <name> ... ` on the same line first.
            if let Some((_, addrs)) = line.split_once("READY ") {
                return addrs
                    .split_whitespace()
                    .map(|a| a.parse().unwrap())
                    .collect();
            }
        }
        panic!("the child {test} exited before it was ready");
    })
    .await
    .unwrap_or_else(|_| panic!("the child {test} did not start within 30 s"));
    (child, addrs)
}
