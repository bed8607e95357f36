//! Kyverno's wildcard match (its `ext/wildcard` package): `*` matches any
//! run of characters, none included; `?` matches exactly one character.
//! No other character is special.
//!
//! The match takes time linear in the pattern and the text. The pattern is
//! cut at its stars into segments: the first must match at the start of the
//! text, the last at its end, and the ones between are placed leftmost, one
//! after the other (placing a segment as early as possible never prevents a
//! later one from matching). A segment without `?` is found with the
//! standard library's two-way substring search, linear in the text; a
//! segment with `?` is found with a bit-parallel (shift-and) scan that
//! reads each character once, with one machine word per 64 characters of
//! the segment. Every character of the text is read by at most one segment
//! search, so the whole match is O(pattern + text) for segments of up to 64
//! characters, and O(pattern + text × ⌈segment / 64⌉) beyond.

use std::collections::BTreeMap;

/// True when `text` matches `pattern`, Kyverno's wildcard: `*` any run of
/// characters (also none), `?` exactly one character.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return match_prefix(pattern, text) == Some("");
    }
    let mut segments = pattern.split('*');
    let first = segments.next().unwrap_or_default();
    let Some(rest) = match_prefix(first, text) else {
        return false;
    };
    let mut middle: Vec<&str> = segments.collect();
    let last = middle.pop().unwrap_or_default();
    let Some(mut rest) = match_suffix(last, rest) else {
        return false;
    };
    for seg in middle.into_iter().filter(|s| !s.is_empty()) {
        match find(seg, rest) {
            Some(end) => rest = &rest[end..],
            None => return false,
        }
    }
    true
}

/// Matches `seg` (no `*`) at the start of `text`; the rest of the text.
fn match_prefix<'t>(seg: &str, text: &'t str) -> Option<&'t str> {
    let mut chars = text.char_indices();
    for p in seg.chars() {
        let (_, c) = chars.next()?;
        if p != '?' && p != c {
            return None;
        }
    }
    Some(chars.as_str())
}

/// Matches `seg` (no `*`) at the end of `text`; what comes before.
fn match_suffix<'t>(seg: &str, text: &'t str) -> Option<&'t str> {
    let mut chars = text.chars();
    for p in seg.chars().rev() {
        let c = chars.next_back()?;
        if p != '?' && p != c {
            return None;
        }
    }
    Some(chars.as_str())
}

/// The byte offset just after the leftmost match of `seg` (no `*`, not
/// empty) in `text`.
fn find(seg: &str, text: &str) -> Option<usize> {
    if !seg.contains('?') {
        return text.find(seg).map(|at| at + seg.len());
    }
    ShiftAnd::new(seg).find_end(text)
}

/// The shift-and automaton of a segment: bit `i` of the state is set when
/// the segment's first `i + 1` characters match the text read so far.
struct ShiftAnd {
    /// Positions holding each literal character, or a `?`.
    masks: BTreeMap<char, Vec<u64>>,
    /// Positions holding a `?` (what any other character allows).
    any: Vec<u64>,
    /// The segment's length in characters.
    len: usize,
}

impl ShiftAnd {
    fn new(seg: &str) -> Self {
        let len = seg.chars().count();
        let words = len.div_ceil(64);
        let mut any = vec![0u64; words];
        for (i, c) in seg.chars().enumerate() {
            if c == '?' {
                any[i / 64] |= 1 << (i % 64);
            }
        }
        let mut masks: BTreeMap<char, Vec<u64>> = BTreeMap::new();
        for (i, c) in seg.chars().enumerate() {
            if c != '?' {
                masks.entry(c).or_insert_with(|| any.clone())[i / 64] |= 1 << (i % 64);
            }
        }
        ShiftAnd { masks, any, len }
    }

    fn find_end(&self, text: &str) -> Option<usize> {
        let words = self.any.len();
        let last = (self.len - 1) / 64;
        let top = 1u64 << ((self.len - 1) % 64);
        let mut state = vec![0u64; words];
        for (at, c) in text.char_indices() {
            let mask = self.masks.get(&c).unwrap_or(&self.any);
            // state = ((state << 1) | 1) & mask, over the words
            let mut carry = 1u64;
            for (s, m) in state.iter_mut().zip(mask) {
                let next = *s >> 63;
                *s = ((*s << 1) | carry) & m;
                carry = next;
            }
            if state[last] & top != 0 {
                return Some(at + c.len_utf8());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kyverno_cases() {
        assert!(wildcard("?*", "a"));
        assert!(!wildcard("?*", ""));
        assert!(wildcard("*", ""));
        assert!(wildcard("", ""));
        assert!(!wildcard("", "a"));
        assert!(wildcard("prod-*", "prod-eu"));
        assert!(!wildcard("prod-*", "dev-eu"));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "acb"));
        // the cases of Kyverno's wildcard package
        assert!(wildcard(
            "my-bucket/In*/Ka*/Ban",
            "my-bucket/India/Karnataka/Ban/Ban/Ban/Ban/Ban"
        ));
        assert!(!wildcard(
            "my-bucket/In*/Ka*/Ban",
            "my-bucket/India/Karnataka/Bangalore"
        ));
        assert!(!wildcard("my-bucket/mnop*?and", "my-bucket/mnopand"));
        assert!(wildcard("my-bucket/mnop*?and?", "my-bucket/mnopqanda"));
        assert!(!wildcard("my-bucket/abc????", "my-bucket/abcde"));
        assert!(wildcard("my-bucket/mnop*??", "my-bucket/mnopqrst"));
        // a character, not a byte
        assert!(wildcard("caf?", "café"));
        assert!(wildcard("*?é*", "xé"));
    }

    #[test]
    fn segments_longer_than_a_word() {
        let seg: String = (0..150)
            .map(|i| if i % 7 == 0 { '?' } else { 'a' })
            .collect();
        let text = format!("{}b{}", "a".repeat(200), "a".repeat(150));
        assert!(wildcard(&format!("*{seg}*"), &text));
        assert!(!wildcard(&format!("*b{seg}b*"), &text));
        assert!(wildcard(&format!("*b{seg}"), &text));
    }
}
