//! Friendlier serde messages: an unknown field names the closest allowed
//! one ("did you mean") instead of listing every field.

/// The edit distance (Levenshtein, by characters) between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The allowed name closest to `unknown`, when it is close enough to be a
/// typo (same letters in another case, or at most a third of the letters
/// changed).
pub(crate) fn closest<'a>(unknown: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase();
    let budget = (unknown.chars().count() / 3).max(1);
    allowed
        .iter()
        .map(|a| {
            let d = if a.to_ascii_lowercase() == lower {
                0
            } else {
                distance(unknown, a)
            };
            (d, *a)
        })
        .filter(|(d, _)| *d <= budget)
        .min()
        .map(|(_, a)| a)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`, ..." as
/// "unknown field `x` (did you mean `a`?)" when one allowed field is close;
/// any other message is returned unchanged.
pub(crate) fn unknown_field(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((name, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match closest(name, &allowed) {
        Some(best) => format!("unknown field `{name}` (did you mean `{best}`?)"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_field() {
        assert_eq!(
            unknown_field("unknown field `namePrefx`, expected one of `namespace`, `namePrefix`, `nameSuffix`"),
            "unknown field `namePrefx` (did you mean `namePrefix`?)"
        );
        assert_eq!(
            unknown_field("unknown field `dependOn`, expected `dependsOn` or `path`"),
            "unknown field `dependOn` (did you mean `dependsOn`?)"
        );
        assert_eq!(
            unknown_field("unknown field `Resources`, expected one of `resources`, `bases`"),
            "unknown field `Resources` (did you mean `resources`?)"
        );
        // nothing close: the list stays
        let far = "unknown field `zzz`, expected one of `resources`, `bases`";
        assert_eq!(unknown_field(far), far);
        assert_eq!(unknown_field("missing field `x`"), "missing field `x`");
    }
}
