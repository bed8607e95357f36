//! Serves a [`MemoryCluster`] over HTTPS with the Kubernetes API (feature
//! `serve`), so that kubectl, kube-rs and any other Kubernetes client talk
//! to it as to an API server.
//!
//! ```text
//!  kubectl ──HTTPS, bearer token──▶ KubeServer (127.0.0.1, hyper + rustls)
//!                                        │ one request at a time per object
//!                                        ▼
//!                                   MemoryCluster (the same value the host holds)
//! ```
//!
//! What it answers:
//!
//! - discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`,
//!   the aggregated form (`as=APIGroupDiscoveryList`, apidiscovery v2),
//!   `/version`, and `/openapi/v3` (paths and operations, no schemas);
//!   built-in kinds and the kinds of the CRDs in the cluster, with scope,
//!   verbs, short names, categories (`all`) and the status subresource;
//! - GET and LIST with `labelSelector` (the full selector syntax),
//!   `fieldSelector` (`metadata.name`, `metadata.namespace` and the fields
//!   a kind adds), `limit` and `continue`, and the `Table` form kubectl
//!   asks for;
//! - server-side apply (`application/apply-patch+yaml`, `fieldManager`,
//!   `force`, `dryRun=All`), merge, JSON and strategic merge patches, POST,
//!   PUT, DELETE (single and collection, `propagationPolicy`,
//!   preconditions) and the status subresource (GET, PUT, PATCH);
//! - impersonation (`Impersonate-User`, `Impersonate-Group`) checked
//!   against the cluster's RBAC, and the access reviews kubectl's
//!   `auth can-i` and `auth whoami` create;
//! - errors as the API server's `Status` bodies (reason, code, details with
//!   causes).
//!
//! The administrator authenticates with the bearer token of the
//! [`Identity`] and is in `system:masters`. Watch and the scale subresource
//! are not served. See `docs/memory-cluster.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use driftless::apply::memory::serve::{KubeServer, ServeOptions};
//! use driftless::apply::MemoryCluster;
//!
//! let cluster = Arc::new(MemoryCluster::new());
//! let server = KubeServer::start(cluster, ServeOptions::default()).unwrap();
//! server.write_kubeconfig("/tmp/kubeconfig").unwrap();
//! // KUBECONFIG=/tmp/kubeconfig kubectl get namespaces
//! server.stop();
//! ```

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use sha2::{Digest, Sha256};

use super::MemoryCluster;

mod api;
mod catalog;
mod errors;
mod protobuf;
mod selector;
mod table;

/// The Kubernetes version the server reports at `/version`.
pub const VERSION: &str = api::GIT_VERSION;

/// The user the bearer token authenticates (in `system:masters`).
pub const ADMIN_USER: &str = "driftless-admin";

/// The largest request body accepted, as the API server's limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Why the server could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound (the port is taken, ...).
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's message.
        message: String,
    },
    /// The certificates or the key could not be made or read.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server's thread or runtime could not start.
    #[error("starting the server: {0}")]
    Start(String),
}

/// The server's credentials: a CA, the serving certificate it signed (for
/// `localhost` and `127.0.0.1`), the certificate's key, and the
/// administrator's bearer token. Reuse one to restart a server that
/// clients already trust.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The CA certificate (PEM), which clients trust.
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// The serving certificate's private key (PEM).
    pub key_pem: String,
    /// The bearer token of the administrator.
    pub token: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("token", &"<redacted>")
            .finish()
    }
}

fn tls_err(e: impl std::fmt::Display) -> ServeError {
    ServeError::Tls(e.to_string())
}

impl Identity {
    /// A new CA (ECDSA P-256) and a serving certificate it signs, valid for
    /// `localhost` and `127.0.0.1`, and a token derived from the new key.
    pub fn generate() -> Result<Identity, ServeError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca.distinguished_name
            .push(DnType::CommonName, "driftless-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(tls_err)?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(tls_err)?;
        let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "driftless-apiserver");
        leaf.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().map_err(tls_err)?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).map_err(tls_err)?;
        let token: String = Sha256::digest(key.serialize_der())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Identity {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            token,
        })
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, ServeError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| ServeError::Tls(format!("the serving certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| ServeError::Tls(format!("the serving key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(tls_err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// How to serve.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The port on 127.0.0.1; 0 (the default) takes a free one.
    pub port: u16,
    /// The credentials; `None` generates new ones.
    pub identity: Option<Identity>,
    /// Set the cluster's clock ([`MemoryCluster::set_now`]) from the
    /// system clock before each request, so creation times and ages are
    /// real. Off by default: the cluster keeps the time its host sets.
    pub system_clock: bool,
    /// Keep a record of every request ([`KubeServer::requests`]).
    pub record_requests: bool,
}

impl ServeOptions {
    /// Serves on `port` (0: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves with these credentials.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Takes the cluster's time from the system clock.
    pub fn system_clock(mut self, on: bool) -> Self {
        self.system_clock = on;
        self
    }

    /// Records every request.
    pub fn record_requests(mut self, on: bool) -> Self {
        self.record_requests = on;
        self
    }
}

/// One request the server answered (see [`ServeOptions::record_requests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, e.g. `/apis/apps/v1/namespaces/default/deployments`.
    pub path: String,
    /// The query string, as sent.
    pub query: String,
    /// The status code of the answer.
    pub status: u16,
}

struct Shared {
    cluster: Arc<MemoryCluster>,
    token: String,
    server: String,
    system_clock: bool,
    log: Option<Mutex<Vec<RecordedRequest>>>,
}

/// A running server. Dropping it stops it.
pub struct KubeServer {
    addr: SocketAddr,
    identity: Identity,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KubeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl KubeServer {
    /// Starts serving `cluster` on 127.0.0.1, on a thread of its own with
    /// its own runtime (callable from synchronous code and from inside
    /// another runtime alike). Returns once the port is bound; connections
    /// are accepted from then on.
    pub fn start(cluster: Arc<MemoryCluster>, options: ServeOptions) -> Result<Self, ServeError> {
        let identity = match options.identity {
            Some(i) => i,
            None => Identity::generate()?,
        };
        let tls = Arc::new(identity.server_config()?);
        let wanted = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), options.port);
        let listener = std::net::TcpListener::bind(wanted).map_err(|e| ServeError::Bind {
            addr: wanted,
            message: e.to_string(),
        })?;
        let addr = listener.local_addr().map_err(|e| ServeError::Bind {
            addr: wanted,
            message: e.to_string(),
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let shared = Arc::new(Shared {
            cluster,
            token: identity.token.clone(),
            server: addr.to_string(),
            system_clock: options.system_clock,
            log: options.record_requests.then(|| Mutex::new(Vec::new())),
        });
        let (shutdown, mut stopped) = tokio::sync::watch::channel(false);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let task_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("driftless-serve".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("driftless-serve-worker")
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    loop {
                        let accept = Box::pin(listener.accept());
                        let stop = Box::pin(stopped.changed());
                        match futures::future::select(accept, stop).await {
                            futures::future::Either::Left((Ok((tcp, _)), _)) => {
                                let acceptor = acceptor.clone();
                                let shared = Arc::clone(&task_shared);
                                tokio::spawn(async move {
                                    let Ok(stream) = acceptor.accept(tcp).await else {
                                        return;
                                    };
                                    let io = hyper_util::rt::TokioIo::new(stream);
                                    let service = hyper::service::service_fn(move |req| {
                                        respond(Arc::clone(&shared), req)
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(io, service)
                                        .await;
                                });
                            }
                            futures::future::Either::Left((Err(_), _)) => {}
                            futures::future::Either::Right(_) => break,
                        }
                    }
                });
                // Dropping the runtime here cancels every open connection.
            })
            .map_err(|e| ServeError::Start(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServeError::Start(e)),
            Err(_) => return Err(ServeError::Start("the server thread ended".into())),
        }
        Ok(KubeServer {
            addr,
            identity,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The credentials (to restart with, or to build a client).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The cluster it serves.
    pub fn cluster(&self) -> &Arc<MemoryCluster> {
        &self.shared.cluster
    }

    /// A kubeconfig for the server: cluster, user (the token) and context
    /// all named `driftless`, namespace `default`.
    pub fn kubeconfig(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.identity.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: driftless\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: driftless\n  user:\n    token: {}\ncontexts:\n- name: driftless\n  context:\n    cluster: driftless\n    user: driftless\n    namespace: default\ncurrent-context: driftless\npreferences: {{}}\n",
            self.url(),
            self.identity.token
        )
    }

    /// Writes [`KubeServer::kubeconfig`] to `path` (readable by its owner
    /// only: it holds the token), through a temporary file and a rename.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        let tmp = path.with_extension("driftless-tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(self.kubeconfig().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// The requests answered so far (empty unless
    /// [`ServeOptions::record_requests`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .log
            .as_ref()
            .and_then(|l| l.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        if let Some(Ok(mut l)) = self.shared.log.as_ref().map(Mutex::lock) {
            l.clear();
        }
    }

    /// Stops accepting, drops every open connection and waits for the
    /// server's thread to end.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Reads one request, answers it through [`api::handle`].
async fn respond(
    shared: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => {
            let f = errors::status(
                413,
                "RequestEntityTooLarge",
                "the request body is too large or was cut off",
                serde_json::Map::new(),
            );
            return Ok(to_hyper(api::Response::from(f)));
        }
    };
    let request = api::Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    if shared.system_clock {
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            shared
                .cluster
                .set_now(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        }
    }
    let ctx = api::Context {
        cluster: &shared.cluster,
        token: &shared.token,
        admin: ADMIN_USER,
        server: &shared.server,
    };
    let answer = api::handle(&ctx, &request);
    if let Some(Ok(mut log)) = shared.log.as_ref().map(Mutex::lock) {
        log.push(RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            status: answer.status,
        });
    }
    Ok(to_hyper(answer))
}

fn to_hyper(r: api::Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *out.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = hyper::header::HeaderValue::from_str(&r.content_type) {
        out.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    out
}
