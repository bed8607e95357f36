//! `cargo run --example build -- <dir> [--flux]`: prints what
//! `kubectl kustomize <dir>` prints, built natively.
//!
//! Errors name files as the command line does (under `--root`, or the
//! folder itself). Exit code 0 when the folder builds, 2 when it does not
//! (or the flags are wrong).

#[macro_use]
mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::render::RenderError;
use driftless::source::DirSource;

/// Build a kustomization folder into multi-document YAML.
#[derive(Parser)]
struct Args {
    /// The folder to build.
    dir: PathBuf,
    /// Turn on Flux's build behaviours (generated kustomization).
    #[arg(long)]
    flux: bool,
    /// The source root (default: the folder itself). Files are read only
    /// from inside it, so set it to reach `../base`-style resources.
    #[arg(long)]
    root: Option<PathBuf>,
}

/// A render error's file, which is relative to the source root, as the
/// command line names it: under `root` (the root itself when empty).
fn on_command_line(mut e: RenderError, root: &Path) -> RenderError {
    e.file = if e.file.is_empty() {
        root.display().to_string()
    } else {
        root.join(&e.file).display().to_string()
    };
    e
}

fn run(args: &Args) -> Result<(), String> {
    let root = args.root.clone().unwrap_or_else(|| args.dir.clone());
    let canonical = |p: &Path| {
        p.canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let (r, d) = (canonical(&root)?, canonical(&args.dir)?);
    let rel = d
        .strip_prefix(&r)
        .map_err(|_| {
            format!(
                "{} is not inside --root {}",
                args.dir.display(),
                root.display()
            )
        })?
        .to_string_lossy()
        .into_owned();
    let tree = DirSource::new(&root)
        .read_tree()
        .map_err(|e| e.to_string())?;
    let opts = KustomizeOptions {
        flux: args.flux,
        ..KustomizeOptions::default()
    };
    let out = build(&tree, &rel, &opts).map_err(|e| on_command_line(e, &root).to_string())?;
    for w in &out.warnings {
        errln!("# Warning: {w}");
    }
    out!(
        "{}",
        driftless::render::kustomize::emit::documents(out.objects.iter().map(|o| o.value()))
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => cli::exit(cli::SUCCESS),
        Err(e) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}
