//! `.sourceignore` matching checked against git's own gitignore matching
//! (`git ls-files --others --exclude-standard`) on the same patterns, for the
//! patterns on which go-git (Flux's matcher) and git agree.
#![cfg(feature = "git")]

mod git_support;

use driftless::source::ignore::apply_sourceignore;
use driftless::source::Tree;
use git_support::*;

#[test]
fn sourceignore_matches_git_check_ignore() {
    let s = Scratch::new();
    let repo = s.init_repo("r");
    let root_rules =
        "*.txt\n!keep.txt\n/build/\ndocs/**/draft.md\ntmp\na/*.yaml\n**/secret.enc\n# comment\n\n";
    let sub_rules = "*.bak\n/local/\n";
    let files = [
        "a.txt",
        "keep.txt",
        "x/keep.txt",
        "x/y.txt",
        "build/out.yaml",
        "x/build/out.yaml",
        "docs/draft.md",
        "docs/a/b/draft.md",
        "docs/final.md",
        "tmp",
        "x/tmp/f.yaml",
        "a/one.yaml",
        "a/b/two.yaml",
        "b/a/three.yaml",
        "deep/er/secret.enc",
        "secret.enc",
        "ok.yaml",
        "sub/f.bak",
        "sub/local/f.yaml",
        "sub/x/local/f.yaml",
        "f.bak",
        "logo.png",
        ".github/ci.yml",
    ];
    let mut tree = Tree::new();
    for f in files {
        let p = repo.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "x").unwrap();
        tree.insert_file(f, b"x".to_vec()).unwrap();
    }
    for (dir, rules) in [("", root_rules), ("sub", sub_rules)] {
        for name in [".gitignore", ".sourceignore"] {
            let rel = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            std::fs::write(repo.join(&rel), rules).unwrap();
            tree.insert_file(&rel, rules.as_bytes().to_vec()).unwrap();
        }
    }
    let listed = git(
        &repo,
        &s.home(),
        &["ls-files", "--others", "--exclude-standard"],
    );
    let mut theirs: Vec<&str> = listed
        .lines()
        .filter(|l| !l.ends_with(".gitignore"))
        .collect();
    theirs.sort();
    apply_sourceignore(&mut tree, None);
    let ours: Vec<&str> = tree.entries().map(|(p, _)| p).collect();
    assert_eq!(ours, theirs);
    // and the defaults are gone because user patterns exist
    assert!(ours.contains(&"logo.png") && ours.contains(&".github/ci.yml"));
}
