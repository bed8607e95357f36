//! The bot's push over smart HTTP (with basic auth) and over ssh, against
//! real servers the tests start on 127.0.0.1: `git http-backend` behind a
//! small HTTP server, and Debian's sshd with a deploy key and a pinned host
//! key.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use driftless::image::automation::{
    Automation, AutomationError, CommitTime, HttpAuth, Outcome, Transport,
};
use driftless::image::LatestImage;

const TIME: CommitTime = CommitTime {
    seconds: 1_780_000_000,
    offset_seconds: 0,
};

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app1\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: app1\n          image: ghcr.io/organization/app1:v1.0.0 # {\"$imagepolicy\": \"flux-system:app1\"}\n";

fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Human")
        .env("GIT_AUTHOR_EMAIL", "human@example.com")
        .env("GIT_COMMITTER_NAME", "Human")
        .env("GIT_COMMITTER_EMAIL", "human@example.com")
        .args(args)
        .output()
        .expect("git must be installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository `<root>/fleet.git` holding the deployment on `main`.
fn make_remote(root: &Path) -> PathBuf {
    let work = root.join("work");
    std::fs::create_dir_all(work.join("apps")).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("apps/deployment.yaml"), DEPLOYMENT).expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "seed"]);
    let srv = root.join("srv");
    std::fs::create_dir_all(&srv).expect("srv");
    let bare = srv.join("fleet.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().expect("utf8"),
            bare.to_str().expect("utf8"),
        ],
    );
    bare
}

fn images() -> BTreeMap<String, LatestImage> {
    let mut m = BTreeMap::new();
    m.insert(
        "flux-system:app1".to_string(),
        LatestImage {
            name: "ghcr.io/organization/app1".into(),
            tag: "v1.2.7".into(),
            digest: None,
        },
    );
    m
}

fn head(bare: &Path, branch: &str) -> Option<String> {
    let out = Command::new("git")
        .current_dir(bare)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .expect("git");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---- smart HTTP -----------------------------------------------------------

/// Serves `root` with `git http-backend`; requests must carry
/// `Authorization: Basic <user:pass>`.
fn http_server(root: PathBuf, user: &'static str, pass: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let expected = format!("Basic {}", b64(format!("{user}:{pass}").as_bytes()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &root, &expected, user);
            });
        }
    });
    port
}

fn serve(stream: TcpStream, root: &Path, expected_auth: &str, user: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    if header("authorization").as_deref() != Some(expected_auth) {
        out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header("content-encoding").unwrap_or_default(),
        )
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = cgi.stdin.take() {
        stdin.write_all(&body)?;
    }
    let output = cgi.wait_with_output()?;
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head_end, sep) = split.unwrap_or((raw.len(), 0));
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let payload = &raw[(head_end + sep).min(raw.len())..];
    let mut status = "200 OK".to_string();
    let mut resp_headers = String::new();
    for h in head.lines() {
        if let Some(s) = h.strip_prefix("Status:") {
            status = s.trim().to_string();
        } else if !h.trim().is_empty() {
            resp_headers.push_str(h.trim_end());
            resp_headers.push_str("\r\n");
        }
    }
    write!(
        out,
        "HTTP/1.1 {status}\r\n{resp_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    out.write_all(payload)?;
    out.flush()
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            s.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    s
}

#[test]
fn push_over_smart_http_with_basic_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = make_remote(dir.path());
    let port = http_server(dir.path().join("srv"), "bot", "s3cret-token");
    let url = format!("http://127.0.0.1:{port}/fleet.git");

    // Without credentials the server refuses, and the error says so.
    let a = Automation::new(&url, "main", "apps", dir.path().join("cache-anon"));
    let err = a.run(&images(), TIME, None).expect_err("401");
    assert!(matches!(err, AutomationError::Fetch { .. }), "{err}");

    // Wrong password: refused, and the password appears nowhere.
    let mut a = Automation::new(&url, "main", "apps", dir.path().join("cache-bad"));
    a.transport = Transport {
        http_auth: Some(HttpAuth::Basic {
            username: "bot".into(),
            password: "wrong-pass-123".into(),
        }),
        ..Transport::default()
    };
    let err = a.run(&images(), TIME, None).expect_err("401");
    assert!(!err.to_string().contains("wrong-pass-123"), "{err}");
    assert!(!format!("{err:?} {a:?}").contains("wrong-pass-123"));

    let mut a = Automation::new(&url, "main", "apps", dir.path().join("cache"));
    a.transport.http_auth = Some(HttpAuth::Basic {
        username: "bot".into(),
        password: "s3cret-token".into(),
    });
    let Outcome::Pushed(p) = a.run(&images(), TIME, None).expect("run over http") else {
        panic!("expected a commit");
    };
    assert_eq!(
        head(&bare, "flux-image-updates").as_deref(),
        Some(p.id.as_str())
    );
    let blob = git(
        &bare,
        &[
            "cat-file",
            "blob",
            "flux-image-updates:apps/deployment.yaml",
        ],
    );
    assert_eq!(
        format!("{blob}\n"),
        DEPLOYMENT.replace("app1:v1.0.0", "app1:v1.2.7")
    );
    // The second run fetches the push branch over http and finds nothing to do.
    assert!(matches!(
        a.run(&images(), TIME, None).expect("again"),
        Outcome::NoUpdates { .. }
    ));
}

// ---- ssh -------------------------------------------------------------------

struct Sshd {
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts Debian's sshd (openssh-server) on 127.0.0.1 with `host_key`,
/// accepting only `client_pub`.
fn sshd(dir: &Path, host_key: &Path, client_pub: &Path) -> (Sshd, u16) {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sshd (Debian package openssh-server) must be installed");
    let port = free_port();
    let auth = dir.join("authorized_keys");
    std::fs::copy(client_pub, &auth).expect("authorized_keys");
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {}\nSetEnv PATH=/usr/local/bin:/usr/bin:/bin\n",
            host_key.display(),
            auth.display(),
            dir.join("sshd.pid").display(),
            user(),
        ),
    )
    .expect("config");
    // sshd needs its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd");
    let guard = Sshd { child };
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (guard, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("sshd did not start on port {port}");
}

#[test]
fn push_over_ssh_with_deploy_key_and_pinned_host_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = make_remote(dir.path());
    let host_key = dir.path().join("host_key");
    let client_key = dir.path().join("deploy_key");
    let other_host = dir.path().join("other_host_key");
    keygen(&host_key);
    keygen(&client_key);
    keygen(&other_host);
    let (_server, port) = sshd(dir.path(), &host_key, &client_key.with_extension("pub"));
    let url = format!("ssh://{}@127.0.0.1:{port}{}", user(), bare.display());
    let known = |key: &Path, name: &str| {
        let line = format!(
            "[127.0.0.1]:{port} {}",
            std::fs::read_to_string(key.with_extension("pub")).expect("pub")
        );
        let p = dir.path().join(name);
        std::fs::write(&p, line).expect("known_hosts");
        p
    };

    // A known_hosts that pins another key: refused, never trusted on first use.
    let mut a = Automation::new(&url, "main", "apps", dir.path().join("cache-wrong"));
    a.transport = Transport {
        ssh_identity: Some(client_key.clone()),
        ssh_known_hosts: Some(known(&other_host, "known_hosts_wrong")),
        ..Transport::default()
    };
    let err = a.run(&images(), TIME, None).expect_err("host key mismatch");
    assert!(matches!(err, AutomationError::Fetch { .. }), "{err}");
    assert_eq!(head(&bare, "flux-image-updates"), None);

    let mut a = Automation::new(&url, "main", "apps", dir.path().join("cache"));
    a.transport = Transport {
        ssh_identity: Some(client_key.clone()),
        ssh_known_hosts: Some(known(&host_key, "known_hosts")),
        ..Transport::default()
    };
    let Outcome::Pushed(p) = a.run(&images(), TIME, None).expect("run over ssh") else {
        panic!("expected a commit");
    };
    assert_eq!(
        head(&bare, "flux-image-updates").as_deref(),
        Some(p.id.as_str())
    );
}
