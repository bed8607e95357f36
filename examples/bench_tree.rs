//! Writes the benchmark tree to disk:
//! `cargo run --example bench_tree -- <out-dir> [apps]`.
//!
//! Exit code 0 when written, 2 on a bad argument or a write error.

#[macro_use]
mod cli;

#[path = "../benches/support/tree.rs"]
mod tree;

use std::process::ExitCode;

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "bench-tree".into()));
    let apps: usize = match args.next() {
        Some(a) => a
            .parse()
            .map_err(|e| format!("apps {a:?}: expected a count: {e}"))?,
        None => 1333,
    };
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    for (p, c) in tree::files(apps) {
        let path = out.join(p);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&path, c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => cli::exit(cli::SUCCESS),
        Err(e) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}
