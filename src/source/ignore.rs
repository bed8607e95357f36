//! `.sourceignore`: Flux's ignore rules for what goes into a source's tree.
//!
//! The rules follow Flux's source-controller (`fluxcd/pkg/sourceignore` and
//! the controller's `SourceIgnoreFilter`):
//!
//! - `.sourceignore` files are read recursively; patterns in a file apply to
//!   paths beneath the folder holding it. Lines starting with `#` and blank
//!   lines are skipped.
//! - When no user pattern exists at all (no `.sourceignore` line and no
//!   extra pattern such as `spec.ignore`), the default list applies: the VCS
//!   patterns ([`EXCLUDE_VCS`]) and [`EXCLUDE_EXT`], [`EXCLUDE_CI`],
//!   [`EXCLUDE_EXTRA`].
//! - As soon as there is any user pattern, the defaults are dropped except
//!   the VCS ones, and the user patterns follow them (a user pattern can
//!   re-include with `!`).
//! - Patterns are matched the way go-git's `gitignore` package matches them
//!   (which Flux uses): the last matching pattern decides; a pattern without
//!   `/` matches any path component; a pattern with `/` is anchored to its
//!   folder, `**` spans folders, and a match on a leading folder excludes
//!   everything under it.

use super::{Entry, Tree};

/// The name of the ignore file.
pub const IGNORE_FILE: &str = ".sourceignore";
/// Flux's default patterns for version control files (always applied).
pub const EXCLUDE_VCS: &str = ".git/,.gitignore,.gitmodules,.gitattributes";
/// Flux's default patterns for file extensions.
pub const EXCLUDE_EXT: &str = "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip";
/// Flux's default patterns for CI configuration.
pub const EXCLUDE_CI: &str = ".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,codeship-services.yml,codeship-steps.yml";
/// Flux's additional default patterns.
pub const EXCLUDE_EXTRA: &str = "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml";

/// One parsed ignore pattern, scoped to a folder (its domain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    domain: Vec<String>,
    parts: Vec<String>,
    inclusion: bool,
    dir_only: bool,
    is_glob: bool,
}

impl Pattern {
    /// Parses one gitignore line for the folder `domain` (path components
    /// from the root; empty for the root).
    pub fn parse(line: &str, domain: &[String]) -> Pattern {
        let mut p = line;
        let mut inclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            inclusion = true;
            p = rest;
        }
        let trimmed;
        if !p.ends_with("\\ ") {
            trimmed = p.trim_end_matches(' ');
            p = trimmed;
        }
        let mut dir_only = false;
        if let Some(rest) = p.strip_suffix('/') {
            dir_only = true;
            p = rest;
        }
        let is_glob = p.contains('/');
        Pattern {
            domain: domain.to_vec(),
            parts: p.split('/').map(str::to_string).collect(),
            inclusion,
            dir_only,
            is_glob,
        }
    }

    /// `Some(true)` when the pattern excludes `path`, `Some(false)` when it
    /// re-includes it, `None` when it does not match.
    fn matches(&self, path: &[&str], is_dir: bool) -> Option<bool> {
        if path.len() <= self.domain.len() {
            return None;
        }
        if self.domain.iter().zip(path).any(|(d, p)| d != p) {
            return None;
        }
        let rel = &path[self.domain.len()..];
        let hit = if self.is_glob {
            self.glob_match(rel, is_dir)
        } else {
            self.simple_match(rel, is_dir)
        };
        hit.then_some(!self.inclusion)
    }

    fn simple_match(&self, path: &[&str], is_dir: bool) -> bool {
        let Some(pat) = self.parts.first() else {
            return false;
        };
        for (i, name) in path.iter().enumerate() {
            match glob(pat.as_bytes(), name.as_bytes()) {
                None => return false,
                Some(false) => continue,
                Some(true) => {}
            }
            if self.dir_only && !is_dir && i == path.len() - 1 {
                return false;
            }
            return true;
        }
        false
    }

    fn glob_match(&self, path: &[&str], is_dir: bool) -> bool {
        let mut path = path;
        let mut matched = false;
        let mut can_traverse = false;
        for (i, pat) in self.parts.iter().enumerate() {
            if pat.is_empty() {
                can_traverse = false;
                continue;
            }
            if pat == "**" {
                if i == self.parts.len() - 1 {
                    break;
                }
                can_traverse = true;
                continue;
            }
            if pat.contains("**") {
                return false;
            }
            if path.is_empty() {
                return false;
            }
            if can_traverse {
                can_traverse = false;
                while let Some((first, rest)) = path.split_first() {
                    path = rest;
                    match glob(pat.as_bytes(), first.as_bytes()) {
                        None => return false,
                        Some(true) => {
                            matched = true;
                            break;
                        }
                        Some(false) if path.is_empty() => matched = false,
                        Some(false) => {}
                    }
                }
            } else {
                let Some((first, rest)) = path.split_first() else {
                    return false;
                };
                if glob(pat.as_bytes(), first.as_bytes()) != Some(true) {
                    return false;
                }
                matched = true;
                path = rest;
            }
        }
        if matched && self.dir_only && !is_dir && path.is_empty() {
            matched = false;
        }
        matched
    }
}

/// Go's `filepath.Match` on one path component: `*`, `?`, `[...]` (with
/// `^` negation and ranges) and `\` escapes. `None` for a malformed pattern.
fn glob(pat: &[u8], name: &[u8]) -> Option<bool> {
    fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
        // pat starts just after '['; returns (matched, bytes consumed incl. ']')
        let mut i = 0;
        let negate = pat.first() == Some(&b'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let b = *pat.get(i)?;
            if b == b']' && !first {
                i += 1;
                break;
            }
            first = false;
            let mut lo = b;
            if lo == b'\\' {
                i += 1;
                lo = *pat.get(i)?;
            }
            i += 1;
            let mut hi = lo;
            if pat.get(i) == Some(&b'-') && pat.get(i + 1).is_some_and(|n| *n != b']') {
                i += 1;
                hi = *pat.get(i)?;
                if hi == b'\\' {
                    i += 1;
                    hi = *pat.get(i)?;
                }
                i += 1;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        Some((matched != negate, i))
    }
    // iterative matcher with single-star backtracking
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' if n < name.len() => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' if n < name.len() => {
                    let (ok, used) = class(&pat[p + 1..], name[n])?;
                    if ok {
                        p += 1 + used;
                        n += 1;
                        continue;
                    }
                }
                b'\\' => {
                    let lit = *pat.get(p + 1)?;
                    if n < name.len() && name[n] == lit {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                c if n < name.len() && c != b'?' && c != b'[' && name[n] == c => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        } else if n == name.len() {
            return Some(true);
        }
        match star {
            Some((sp, sn)) if sn < name.len() => {
                star = Some((sp, sn + 1));
                p = sp + 1;
                n = sn + 1;
            }
            _ => {
                // validate the rest of the pattern so malformed classes error out
                return if pat[p.min(pat.len())..].contains(&b'[') && class_is_bad(&pat[p..]) {
                    None
                } else {
                    Some(false)
                };
            }
        }
    }
    fn class_is_bad(rest: &[u8]) -> bool {
        match rest.iter().position(|b| *b == b'[') {
            Some(i) => class(&rest[i + 1..], 0).is_none(),
            None => false,
        }
    }
}

/// A set of ignore patterns with Flux's default handling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    user: Vec<Pattern>,
}

fn split_defaults(list: &str) -> Vec<Pattern> {
    list.split(',').map(|p| Pattern::parse(p, &[])).collect()
}

/// Reads the patterns of one ignore file's text for folder `domain`.
pub fn read_patterns(text: &str, domain: &[String]) -> Vec<Pattern> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| Pattern::parse(l, domain))
        .collect()
}

impl IgnoreRules {
    /// Collects the `.sourceignore` files of `tree` (root first, then
    /// folders in path order, as Flux walks them).
    pub fn from_tree(tree: &Tree) -> Self {
        let mut files: Vec<(Vec<String>, &[u8])> = Vec::new();
        for (path, entry) in tree.entries() {
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", path),
            };
            if name != IGNORE_FILE {
                continue;
            }
            if let Entry::File(bytes) = entry {
                let domain: Vec<String> = if dir.is_empty() {
                    Vec::new()
                } else {
                    dir.split('/').map(str::to_string).collect()
                };
                files.push((domain, bytes));
            }
        }
        // Flux: root file, then each subfolder depth-first in name order.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut user = Vec::new();
        for (domain, bytes) in files {
            let text = String::from_utf8_lossy(bytes);
            user.extend(read_patterns(&text, &domain));
        }
        IgnoreRules { user }
    }

    /// Appends extra patterns (Flux's `spec.ignore`), rooted at the top.
    pub fn with_extra(mut self, patterns: &str) -> Self {
        self.user.extend(read_patterns(patterns, &[]));
        self
    }

    /// The patterns in force, in order (later ones win).
    pub fn effective(&self) -> Vec<Pattern> {
        let mut ps = split_defaults(EXCLUDE_VCS);
        if self.user.is_empty() {
            ps.extend(split_defaults(
                &[EXCLUDE_EXT, EXCLUDE_CI, EXCLUDE_EXTRA].join(","),
            ));
        } else {
            ps.extend(self.user.iter().cloned());
        }
        ps
    }

    /// Removes every ignored entry from `tree`.
    pub fn apply(&self, tree: &mut Tree) {
        let ps = self.effective();
        let doomed: Vec<String> = tree
            .entries()
            .filter(|(path, _)| {
                let comps: Vec<&str> = path.split('/').collect();
                is_ignored(&ps, &comps, false)
            })
            .map(|(p, _)| p.to_string())
            .collect();
        for p in doomed {
            tree.remove(&p);
        }
    }
}

/// True when the last pattern matching `path` excludes it.
pub fn is_ignored(patterns: &[Pattern], path: &[&str], is_dir: bool) -> bool {
    for p in patterns.iter().rev() {
        if let Some(exclude) = p.matches(path, is_dir) {
            return exclude;
        }
    }
    false
}

/// Applies `.sourceignore` files found in `tree`, plus `extra` patterns, with
/// Flux's defaults.
pub fn apply_sourceignore(tree: &mut Tree, extra: Option<&str>) {
    let mut rules = IgnoreRules::from_tree(tree);
    if let Some(e) = extra {
        rules = rules.with_extra(e);
    }
    rules.apply(tree);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(paths: &[&str]) -> Tree {
        let mut t = Tree::new();
        for p in paths {
            t.insert_file(p, b"x".to_vec()).unwrap();
        }
        t
    }
    fn names(t: &Tree) -> Vec<&str> {
        t.entries().map(|(p, _)| p).collect()
    }

    #[test]
    fn globs() {
        assert_eq!(glob(b"*.png", b"a.png"), Some(true));
        assert_eq!(glob(b"*.png", b"a.pngx"), Some(false));
        assert_eq!(glob(b"a?c", b"abc"), Some(true));
        assert_eq!(glob(b"[a-c]x", b"bx"), Some(true));
        assert_eq!(glob(b"[^a-c]x", b"bx"), Some(false));
        assert_eq!(glob(b"*.tar.gz", b"x.tar.gz"), Some(true));
        assert_eq!(glob(b"\\*", b"*"), Some(true));
        assert_eq!(glob(b"[", b"x"), None);
    }

    #[test]
    fn defaults_apply_without_user_patterns() {
        let mut tree = t(&[
            ".github/workflows/ci.yml",
            ".gitignore",
            "a/logo.png",
            "a/deploy.yaml",
            "b/.sops.yaml",
            ".travis.yml",
        ]);
        apply_sourceignore(&mut tree, None);
        assert_eq!(names(&tree), vec!["a/deploy.yaml"]);
    }

    #[test]
    fn user_patterns_drop_defaults_but_not_vcs() {
        let mut tree = t(&[
            ".sourceignore",
            ".github/workflows/ci.yml",
            ".gitignore",
            "a/logo.png",
            "a/deploy.yaml",
            "a/secret.txt",
        ]);
        tree.insert_file(".sourceignore", b"# comment\n*.txt\n".to_vec())
            .unwrap();
        apply_sourceignore(&mut tree, None);
        assert_eq!(
            names(&tree),
            vec![
                ".github/workflows/ci.yml",
                ".sourceignore",
                "a/deploy.yaml",
                "a/logo.png"
            ]
        );
    }

    #[test]
    fn nested_files_are_scoped_and_negation_works() {
        let mut tree = t(&[
            "a/x.yaml",
            "a/keep.yaml",
            "b/x.yaml",
            "c/d/e.yaml",
            "c/f.yaml",
        ]);
        tree.insert_file("a/.sourceignore", b"*.yaml\n!keep.yaml\n".to_vec())
            .unwrap();
        tree.insert_file(".sourceignore", b"/c/d/\n".to_vec())
            .unwrap();
        apply_sourceignore(&mut tree, None);
        assert_eq!(
            names(&tree),
            vec![
                ".sourceignore",
                "a/.sourceignore",
                "a/keep.yaml",
                "b/x.yaml",
                "c/f.yaml"
            ]
        );
    }

    #[test]
    fn double_star_spans_folders() {
        let mut tree = t(&["x/y/z/secret.enc", "secret.enc", "x/ok.yaml"]);
        apply_sourceignore(&mut tree, Some("**/secret.enc\n"));
        assert_eq!(names(&tree), vec!["x/ok.yaml"]);
    }
}
