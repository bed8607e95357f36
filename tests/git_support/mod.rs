//! Helpers shared by the git and verify tests: repositories made with the git
//! CLI, keys made with ssh-keygen and gpg, and real servers on 127.0.0.1
//! (`git http-backend` behind a tiny HTTP server, and sshd).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Panics with a clear message when `prog` is missing (tests must fail, not skip).
pub fn require(prog: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(prog);
        if p.is_file() {
            return p;
        }
    }
    panic!("required program {prog:?} is not installed (install git, openssh-server, openssh-client, gnupg)");
}

/// A git command with a clean, isolated configuration.
pub fn git_cmd(dir: &Path, home: &Path) -> Command {
    let mut c = Command::new(require("git"));
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.org")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.org")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000");
    c
}

/// Runs git and returns trimmed stdout; panics on failure.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir, home).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs git with extra env and returns the full output.
pub fn git_env(
    dir: &Path,
    home: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let mut c = git_cmd(dir, home);
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().expect("run git")
}

/// A scratch area with a HOME for git.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Scratch { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    /// Creates a non-bare repository at `name` with branch main.
    pub fn init_repo(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        git(&p, &self.home(), &["init", "-q", "-b", "main"]);
        p
    }
    /// Writes files, commits them with `msg`, returns the commit id.
    pub fn commit(&self, repo: &Path, files: &[(&str, &str)], msg: &str) -> String {
        for (f, body) in files {
            let p = repo.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
        }
        git(repo, &self.home(), &["add", "-A"]);
        git(
            repo,
            &self.home(),
            &["commit", "-q", "--allow-empty", "-m", msg],
        );
        git(repo, &self.home(), &["rev-parse", "HEAD"])
    }
}

// ------------------------------------------------------------------------ gpg

/// Runs gpg in batch mode with `home` as GNUPGHOME; returns stdout, panics
/// on failure.
pub fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new(require("gpg"))
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--yes",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .output()
        .expect("run gpg");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A new, private (0700) GNUPGHOME at `dir`.
pub fn gpg_home(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut perm = std::fs::metadata(dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o700);
    std::fs::set_permissions(dir, perm).unwrap();
    dir.to_path_buf()
}

/// The fingerprint of the key with user id `uid` in `home`.
pub fn gpg_fingerprint(home: &Path, uid: &str) -> String {
    let out = gpg(home, &["--with-colons", "--list-keys", uid]);
    out.lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("a fingerprint")
        .to_string()
}

/// An executable wrapper running gpg at the faked time `unix_seconds`, for
/// `gpg.program` (signing or verifying as if it were then).
pub fn gpg_at(dir: &Path, name: &str, unix_seconds: i64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nexec {} --faked-system-time {unix_seconds}! \"$@\"\n",
            require("gpg").display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path
}

/// Stops the gpg-agent a GNUPGHOME started.
pub fn gpg_stop_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .output();
}

// ---------------------------------------------------------------- HTTP server

/// `git http-backend` behind a minimal HTTP/1.1 server on 127.0.0.1.
pub struct HttpServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Number of HTTP requests received (a keep-alive connection may carry several).
    pub requests: Arc<AtomicUsize>,
}

/// What the server requires of clients.
#[derive(Clone)]
pub enum HttpAuth {
    None,
    Basic(String, String),
    Bearer(String),
}

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl HttpServer {
    /// Serves the repositories under `root`.
    pub fn start(root: &Path, auth: HttpAuth) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (stop2, req2, root) = (stop.clone(), requests.clone(), root.to_path_buf());
        let backend = {
            let exec = Command::new(require("git"))
                .arg("--exec-path")
                .output()
                .unwrap();
            PathBuf::from(String::from_utf8_lossy(&exec.stdout).trim()).join("git-http-backend")
        };
        assert!(
            backend.is_file(),
            "git-http-backend not found at {}",
            backend.display()
        );
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (root, auth, backend, count) =
                            (root.clone(), auth.clone(), backend.clone(), req2.clone());
                        std::thread::spawn(move || {
                            let _ = handle(s, &root, &auth, &backend, &count);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        HttpServer {
            port,
            stop,
            requests,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(
    stream: TcpStream,
    root: &Path,
    auth: &HttpAuth,
    backend: &Path,
    count: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        count.fetch_add(1, Ordering::Relaxed);
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(len) = get("content-length") {
            let n: usize = len.parse().unwrap_or(0);
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let mut sz = String::new();
                reader.read_line(&mut sz)?;
                let n = usize::from_str_radix(sz.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let authorized = match auth {
            HttpAuth::None => true,
            HttpAuth::Basic(u, p) => {
                get("authorization")
                    == Some(format!("Basic {}", b64(format!("{u}:{p}").as_bytes())))
            }
            HttpAuth::Bearer(t) => get("authorization") == Some(format!("Bearer {t}")),
        };
        if !authorized {
            let msg = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n";
            out.write_all(msg.as_bytes())?;
            out.flush()?;
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut cmd = Command::new(backend);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", root)
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(ct) = get("content-type") {
            cmd.env("CONTENT_TYPE", ct);
        }
        if let Some(p) = get("git-protocol") {
            cmd.env("GIT_PROTOCOL", p);
        }
        if let Some(enc) = get("content-encoding") {
            cmd.env("HTTP_CONTENT_ENCODING", enc);
        }
        let mut child = cmd.spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let mut cgi = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut cgi)?;
        let _ = writer.join();
        let _ = child.wait();
        let split = cgi
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| cgi.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
        let (head, payload) = match split {
            Some((i, n)) => (
                String::from_utf8_lossy(&cgi[..i]).to_string(),
                &cgi[i + n..],
            ),
            None => (String::new(), &cgi[..]),
        };
        let mut status = "200 OK".to_string();
        let mut resp = String::new();
        for h in head.lines() {
            if let Some(s) = h.strip_prefix("Status:") {
                status = s.trim().to_string();
            } else if !h.trim().is_empty() {
                resp.push_str(h.trim_end());
                resp.push_str("\r\n");
            }
        }
        let msg = format!(
            "HTTP/1.1 {status}\r\n{resp}Content-Length: {}\r\n\r\n",
            payload.len()
        );
        out.write_all(msg.as_bytes())?;
        out.write_all(payload)?;
        out.flush()?;
    }
}

// ---------------------------------------------------------------- TLS proxy

/// A CA and a server certificate for 127.0.0.1, made with the openssl CLI.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=driftless test CA",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        Pki {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// A TLS-terminating proxy (python3's ssl module) in front of a local port.
pub struct TlsProxy {
    pub port: u16,
    child: Child,
}

const PROXY: &str = r#"
import socket, ssl, sys, threading
cert, key, backend = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(64)
print(srv.getsockname()[1], flush=True)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except Exception: pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except Exception: pass
def serve(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except Exception:
        c.close(); return
    u = socket.create_connection(("127.0.0.1", backend))
    threading.Thread(target=pump, args=(u, t), daemon=True).start()
    pump(t, u)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

impl TlsProxy {
    pub fn start(pki: &Pki, backend_port: u16) -> Self {
        let mut child = Command::new(require("python3"))
            .arg("-c")
            .arg(PROXY)
            .arg(&pki.server_cert)
            .arg(&pki.server_key)
            .arg(backend_port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 TLS proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TLS proxy did not start: {line:?}"));
        TlsProxy { port, child }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("https://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----------------------------------------------------------------- SSH server

/// sshd in the foreground on a free port, with its own host key and an
/// authorized deploy key.
pub struct SshServer {
    pub port: u16,
    child: Child,
    /// `known_hosts` pinning this server's host key.
    pub known_hosts: PathBuf,
    /// The deploy key (private) that may log in.
    pub deploy_key: PathBuf,
    /// A `known_hosts` with another key for this host (must be refused).
    pub wrong_known_hosts: PathBuf,
    pub user: String,
}

pub fn keygen(path: &Path, kind: &str) {
    let out = Command::new(require("ssh-keygen"))
        .args(["-q", "-t", kind, "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SshServer {
    pub fn start(dir: &Path) -> Self {
        let sshd = require("sshd");
        std::fs::create_dir_all(dir).unwrap();
        // sshd needs its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("host_ed25519");
        keygen(&host_key, "ed25519");
        let other_key = dir.join("other_host");
        keygen(&other_key, "ed25519");
        let deploy_key = dir.join("deploy");
        keygen(&deploy_key, "ed25519");
        std::fs::copy(dir.join("deploy.pub"), dir.join("authorized_keys")).unwrap();
        let user = String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
            .trim()
            .to_string();
        let git_dir = Path::new(&require("git")).parent().unwrap().to_path_buf();
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAcceptEnv GIT_PROTOCOL\n\
                     SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\nLogLevel ERROR\n",
                    host_key.display(),
                    dir.join("authorized_keys").display(),
                    git_dir.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start sshd");
            // wait until it listens
            let mut up = false;
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if up {
                let pubkey = std::fs::read_to_string(dir.join("host_ed25519.pub")).unwrap();
                let other = std::fs::read_to_string(dir.join("other_host.pub")).unwrap();
                let key_part = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                let known_hosts = dir.join("known_hosts");
                std::fs::write(
                    &known_hosts,
                    format!("[127.0.0.1]:{port} {}\n", key_part(&pubkey)),
                )
                .unwrap();
                let wrong = dir.join("wrong_known_hosts");
                std::fs::write(&wrong, format!("[127.0.0.1]:{port} {}\n", key_part(&other)))
                    .unwrap();
                return SshServer {
                    port,
                    child,
                    known_hosts,
                    deploy_key,
                    wrong_known_hosts: wrong,
                    user,
                };
            }
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            last_err = err;
        }
        panic!("sshd did not start: {last_err}");
    }

    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a blocking future to completion.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}
