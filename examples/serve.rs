//! Serves the embedded cluster's state folder over HTTPS with the
//! Kubernetes API, so kubectl (or any Kubernetes client) can look at it.
//!
//! ```text
//! cargo run --example reconcile -- --state ./.driftless-state
//! cargo run --example serve -- --state ./.driftless-state --kubeconfig-out /tmp/kc
//! KUBECONFIG=/tmp/kc kubectl get all -A
//! ```
//!
//! It listens on 127.0.0.1 (a free port unless `--port` is given), writes a
//! kubeconfig (a new CA, the server's certificate, a bearer token) to
//! `--kubeconfig-out` once it is listening, prints one line saying where it
//! serves, and runs until interrupted. Writes made through it (kubectl
//! apply, edit, delete) go to the state folder, atomically, as the other
//! examples' writes do; creation times come from the system clock.
//! Exit code 2 when it cannot start (the state folder cannot be opened,
//! the port is taken, the kubeconfig cannot be written).

#[macro_use]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use driftless::apply::memory::serve::{KubeServer, ServeOptions};
use driftless::apply::MemoryCluster;

#[derive(Parser)]
#[command(about = "Serve the embedded cluster with the Kubernetes API")]
struct Args {
    /// The embedded cluster's state folder (created when absent).
    #[arg(long, default_value = "./.driftless-state")]
    state: PathBuf,
    /// Where to write the kubeconfig for the server.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// The port on 127.0.0.1 (default: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cluster = match MemoryCluster::open(&args.state) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return cli::exit(cli::ERROR);
        }
    };
    let options = ServeOptions::default().port(args.port).system_clock(true);
    let server = match KubeServer::start(Arc::new(cluster), options) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {e}");
            return cli::exit(cli::ERROR);
        }
    };
    if let Err(e) = server.write_kubeconfig(&args.kubeconfig_out) {
        errln!(
            "error: writing the kubeconfig {}: {e}",
            args.kubeconfig_out.display()
        );
        return cli::exit(cli::ERROR);
    }
    outln!(
        "serving {} at {} (kubeconfig: {}); interrupt to stop",
        args.state.display(),
        server.url(),
        args.kubeconfig_out.display()
    );
    loop {
        std::thread::park();
    }
}
