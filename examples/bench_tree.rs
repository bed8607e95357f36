//! Writes the benchmark tree to disk:
//! `cargo run --example bench_tree -- <out-dir> [apps]`.

#[path = "../benches/support/tree.rs"]
mod tree;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "bench-tree".into()));
    let apps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1333);
    for (p, c) in tree::files(apps) {
        let path = out.join(p);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(path, c)?;
    }
    Ok(())
}
