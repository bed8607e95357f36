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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let tree = match DirSource::new(&args.dir).read_tree() {
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
    match build(&tree, "", &opts) {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!("# Warning: {w}");
            }
            let values: Vec<&serde_json::Value> = out.objects.iter().map(|o| o.value()).collect();
            print!("{}", driftless::yaml::to_multi_doc(values));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
