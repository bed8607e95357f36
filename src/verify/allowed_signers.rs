//! A parser for OpenSSH's allowed-signers file (`gpg.ssh.allowedSignersFile`),
//! as `ssh-keygen -Y verify` reads it.
//!
//! Each line is `principals [options] keytype base64-key [comment]`:
//! - `principals` is a comma-separated list of patterns (`*` and `?`
//!   wildcards, `!` negation), optionally in double quotes;
//! - `options` is a comma-separated list of `cert-authority`,
//!   `namespaces="git,..."`, `valid-after="YYYYMMDD[HHMM[SS]][Z]"` and
//!   `valid-before="..."`; any other option is an error, as in ssh-keygen;
//! - `#` starts a comment line; blank lines are skipped.
//!
//! Differences from ssh-keygen, all documented: times without a trailing
//! `Z` are read as UTC (ssh-keygen uses the local time zone; the library
//! reads no clock or time zone), and `cert-authority` lines are parsed but
//! never match a signature (certificate signatures are not supported, see
//! [`crate::verify::ssh::SshVerifier`]).

use ssh_key::PublicKey;

/// One line of an allowed-signers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedSigner {
    /// The line number (1-based) in the file.
    pub line: usize,
    /// The principals field as written (without quotes).
    pub principals: String,
    /// True for `cert-authority` lines.
    pub cert_authority: bool,
    /// The `namespaces="..."` patterns, if given.
    pub namespaces: Option<String>,
    /// `valid-after`, seconds since the epoch.
    pub valid_after: Option<i64>,
    /// `valid-before`, seconds since the epoch.
    pub valid_before: Option<i64>,
    /// The public key.
    pub key: PublicKey,
}

/// Why an allowed-signers file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct ParseError {
    /// The file name (or another label for the input).
    pub source_name: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed allowed-signers file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedSigners {
    /// The lines, in file order.
    pub signers: Vec<AllowedSigner>,
}

/// Splits off the first whitespace-delimited token, honouring double quotes
/// (as OpenSSH's `strdelimw` does). Returns (token, rest).
fn next_token(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        return Some((q[..end].to_string(), &q[end + 1..]));
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((s[..end].to_string(), &s[end..]))
}

/// Splits the options field at commas outside double quotes, and returns it
/// with the rest of the line (as OpenSSH's `sshkey_advance_past_options`).
fn take_options(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Some((&s[..i], &s[i..])),
            _ => {}
        }
    }
    None
}

fn split_options(opts: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in opts.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&opts[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&opts[start..]);
    out
}

/// Parses `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, with an optional
/// trailing `Z`, as UTC seconds since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    if !s.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&s.len()) {
        return None;
    }
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
    let (h, mi, se) = match s.len() {
        8 => (0, 0, 0),
        12 => (num(8, 10)?, num(10, 12)?, 0),
        _ => (num(8, 10)?, num(10, 12)?, num(12, 14)?),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // days from civil (Howard Hinnant's algorithm)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn dequote(v: &str) -> Option<&str> {
    v.strip_prefix('"')?.strip_suffix('"')
}

/// OpenSSH's `match_pattern`: `*` and `?` wildcards over the whole string.
pub fn match_pattern(s: &str, pat: &str) -> bool {
    let (s, p) = (s.as_bytes(), pat.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if j < p.len() && (p[j] == b'?' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == b'*' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == b'*' {
        j += 1;
    }
    j == p.len()
}

/// OpenSSH's `match_pattern_list`: true when some pattern matches and no
/// negated (`!`) pattern does.
pub fn match_pattern_list(s: &str, list: &str) -> bool {
    let mut got = false;
    for pat in list.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if match_pattern(s, neg) {
                return false;
            }
        } else if match_pattern(s, pat) {
            got = true;
        }
    }
    got
}

impl AllowedSigners {
    /// Parses the text of an allowed-signers file; `source_name` labels errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, ParseError> {
        let mut signers = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let err = |message: String| ParseError {
                source_name: source_name.to_string(),
                line,
                message,
            };
            let l = raw
                .trim_start_matches([' ', '\t'])
                .trim_end_matches(['\r', ' ', '\t']);
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (principals, rest) =
                next_token(l).ok_or_else(|| err("missing principals".into()))?;
            if principals.is_empty() {
                return Err(err("empty principals".into()));
            }
            // Try "keytype base64 [comment]" first, then "options keytype base64".
            let (opts, key) = match parse_key(rest) {
                Some(k) => (None, k),
                None => {
                    let (opts, rest) =
                        take_options(rest).ok_or_else(|| err("invalid key or options".into()))?;
                    let key = parse_key(rest)
                        .ok_or_else(|| err(format!("invalid public key after options {opts:?}")))?;
                    (Some(opts), key)
                }
            };
            let mut signer = AllowedSigner {
                line,
                principals,
                cert_authority: false,
                namespaces: None,
                valid_after: None,
                valid_before: None,
                key,
            };
            for opt in opts.map(split_options).unwrap_or_default() {
                let (name, value) = match opt.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (opt, None),
                };
                match (name.to_ascii_lowercase().as_str(), value) {
                    ("cert-authority", None) => signer.cert_authority = true,
                    ("namespaces", Some(v)) => {
                        let v = dequote(v)
                            .ok_or_else(|| err(format!("namespaces value {v} is not quoted")))?;
                        signer.namespaces = Some(v.to_string());
                    }
                    ("valid-after", Some(v)) | ("valid-before", Some(v)) => {
                        let q = dequote(v)
                            .ok_or_else(|| err(format!("{name} value {v} is not quoted")))?;
                        let t = parse_time(q)
                            .ok_or_else(|| err(format!("{name}: invalid time {q:?}")))?;
                        if name.eq_ignore_ascii_case("valid-after") {
                            signer.valid_after = Some(t);
                        } else {
                            signer.valid_before = Some(t);
                        }
                    }
                    _ => return Err(err(format!("unsupported option {opt:?}"))),
                }
            }
            signers.push(signer);
        }
        Ok(AllowedSigners { signers })
    }

    /// Reads and parses an allowed-signers file.
    pub fn read(path: &std::path::Path) -> Result<Self, ParseError> {
        let text = std::fs::read_to_string(path).map_err(|e| ParseError {
            source_name: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The non-CA lines whose key is `key`, in file order.
    pub fn lines_for<'a>(
        &'a self,
        key: &'a ssh_key::public::KeyData,
    ) -> impl Iterator<Item = &'a AllowedSigner> + 'a {
        self.signers
            .iter()
            .filter(move |s| !s.cert_authority && s.key.key_data() == key)
    }
}

/// Parses `keytype base64 [comment]` at the start of `s`.
fn parse_key(s: &str) -> Option<PublicKey> {
    let s = s.trim_start_matches([' ', '\t']);
    let mut it = s.splitn(3, [' ', '\t']);
    let kt = it.next()?;
    let b64 = it.next()?;
    if kt.is_empty() || b64.is_empty() {
        return None;
    }
    PublicKey::from_openssh(&format!("{kt} {b64}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1Gsmbt8ruV5+A7X45feeygQHKa6y65lJZ674V/M0OB";

    #[test]
    fn parses_lines_with_options() {
        let text = format!(
            "# comment\n\n\"a@x.org,b@*.org\" namespaces=\"git,file\",valid-after=\"20240101\",valid-before=\"202501020304Z\" {KEY} me\nc@x.org {KEY}\n*@ca.org cert-authority {KEY}\n"
        );
        let s = AllowedSigners::parse(&text, "f").unwrap();
        assert_eq!(s.signers.len(), 3);
        let a = &s.signers[0];
        assert_eq!(a.principals, "a@x.org,b@*.org");
        assert_eq!(a.namespaces.as_deref(), Some("git,file"));
        assert_eq!(a.valid_after, Some(1_704_067_200));
        assert_eq!(a.valid_before, Some(1_735_787_040));
        assert_eq!(s.signers[1].line, 4);
        assert!(s.signers[2].cert_authority);
        let key = s.signers[1].key.key_data().clone();
        assert_eq!(s.lines_for(&key).count(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = AllowedSigners::parse(&format!("ok@x {KEY}\nbad@x frob=\"1\" {KEY}\n"), "signers")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("signers:2:"), "{e}");
        assert!(AllowedSigners::parse("x@y ssh-ed25519 !!!\n", "f").is_err());
        assert!(AllowedSigners::parse(&format!("x@y valid-after=\"2024\" {KEY}\n"), "f").is_err());
    }

    #[test]
    fn patterns() {
        assert!(match_pattern_list("a@x.org", "b@x.org,*@x.org"));
        assert!(!match_pattern_list("a@x.org", "*@x.org,!a@*"));
        assert!(match_pattern("git", "g?t") && !match_pattern("gitx", "git"));
    }
}
