//! `cargo run --example build -- <dir> [--flux]`: prints what
//! `kubectl kustomize <dir>` prints, built natively.

use std::process::ExitCode;

use clap::Parser;
use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::DirSource;

/// Build a kustomization folder into multi-document YAML.
#[derive(Parser)]
struct Args {
    /// The folder to build.
    dir: std::path::PathBuf,
    /// Turn on Flux's build behaviours (generated kustomization).
    #[arg(long)]
    flux: bool,
    /// The source root (default: the folder itself). Files are read only
    /// from inside it, so set it to reach `../base`-style resources.
    #[arg(long)]
    root: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = args.root.clone().unwrap_or_else(|| args.dir.clone());
    let rel = match (root.canonicalize(), args.dir.canonicalize()) {
        (Ok(r), Ok(d)) => match d.strip_prefix(&r) {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => {
                eprintln!(
                    "error: {} is not inside {}",
                    args.dir.display(),
                    root.display()
                );
                return ExitCode::from(1);
            }
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {}: {e}", args.dir.display());
            return ExitCode::from(1);
        }
    };
    let tree = match DirSource::new(&root).read_tree() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = KustomizeOptions {
        flux: args.flux,
        ..KustomizeOptions::default()
    };
    match build(&tree, &rel, &opts) {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!("# Warning: {w}");
            }
            print!(
                "{}",
                driftless::render::kustomize::emit::documents(
                    out.objects.iter().map(|o| o.value())
                )
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
