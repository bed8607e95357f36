//! The nesting depth of a YAML text, measured before the parser runs.
//!
//! libyaml's scanner (behind `serde_yaml_ng`) walks its whole stack of
//! flow levels for every token, so `[[[…]]]` with 200,000 levels takes
//! minutes; and the backend builds every event of a document before the
//! first value is seen, so a depth limit checked on the parsed value comes
//! too late. This pass follows the scanner's own rules (the same token
//! starts, scalars, comments, indentation and simple keys, transcribed
//! from `unsafe-libyaml`'s `scanner.rs`) but keeps no token: only the
//! flow level and the stack of block indentations, in one linear pass.
//!
//! Where a collection starts, the open block collections plus the open
//! flow collections are never more than the depth that collection has
//! in the parsed document (an indentless sequence is not counted, a
//! collection used as a key is counted as its mapping's sibling). So a
//! text refused here holds a collection deeper than the limit, which the
//! loader would refuse after parsing; text within the limit is never
//! refused. Where libyaml stops with a syntax error this pass stops too
//! and lets the parser report it.

/// Why the scan ended early.
enum Halt {
    /// A collection starting on this 0-based line is nested deeper than
    /// the limit.
    TooDeep(usize),
    /// libyaml stops here with a syntax error; the parser reports it.
    Syntax,
}

type Step = Result<(), Halt>;

/// A possible simple key (a node that a later `:` may turn into a key).
#[derive(Clone, Copy, Default)]
struct SimpleKey {
    possible: bool,
    line: usize,
    index: usize,
    column: usize,
}

struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    /// In characters, as libyaml counts columns.
    column: usize,
    flow_level: usize,
    indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    /// One slot for the block context and one per open flow collection.
    simple_keys: Vec<SimpleKey>,
    max_depth: usize,
}

/// The 0-based line of the first collection nested deeper than
/// `max_depth` (the root value is at depth 1), or `None` when there is
/// none or libyaml stops on a syntax error first.
pub(super) fn too_deep(text: &str, max_depth: usize) -> Option<usize> {
    let mut bytes = text.as_bytes();
    // the reader refuses these characters (and stops reading there)
    if let Some((at, _)) = text.char_indices().find(|&(_, c)| !readable(c)) {
        bytes = &bytes[..at];
    }
    // the reader consumes a byte order mark at the start of the stream
    let pos = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut scanner = Scanner {
        s: bytes,
        pos,
        line: 0,
        column: 0,
        flow_level: 0,
        indent: -1,
        indents: Vec::new(),
        simple_key_allowed: true,
        simple_keys: vec![SimpleKey::default()],
        max_depth,
    };
    match scanner.run() {
        Err(Halt::TooDeep(line)) => Some(line),
        Ok(()) | Err(Halt::Syntax) => None,
    }
}

/// The characters libyaml's reader accepts.
fn readable(c: char) -> bool {
    matches!(c as u32,
        0x9 | 0xA | 0xD | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// libyaml's `IS_ALPHA`: the characters of anchors and tag handles.
fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Scanner<'_> {
    fn at(&self, k: usize) -> u8 {
        self.s.get(self.pos + k).copied().unwrap_or(0)
    }

    fn is_z(&self, k: usize) -> bool {
        self.pos + k >= self.s.len()
    }

    fn is_break(&self, k: usize) -> bool {
        match self.at(k) {
            b'\r' | b'\n' => true,
            0xC2 => self.at(k + 1) == 0x85,
            0xE2 => self.at(k + 1) == 0x80 && matches!(self.at(k + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }

    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t') && !self.is_z(k)
    }

    fn is_breakz(&self, k: usize) -> bool {
        self.is_z(k) || self.is_break(k)
    }

    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_breakz(k)
    }

    /// Steps over one character (libyaml's `SKIP`).
    fn skip(&mut self) {
        let width = match self.at(0) {
            0..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        self.pos = (self.pos + width).min(self.s.len());
        self.column += 1;
    }

    /// Steps over one line break (`SKIP_LINE`; `\r\n` is one).
    fn skip_line(&mut self) {
        if self.at(0) == b'\r' && self.at(1) == b'\n' {
            self.pos += 2;
        } else if self.is_break(0) {
            self.skip();
        } else {
            return;
        }
        self.column = 0;
        self.line += 1;
    }

    fn document_indicator(&self) -> bool {
        self.column == 0
            && ((self.at(0) == b'-' && self.at(1) == b'-' && self.at(2) == b'-')
                || (self.at(0) == b'.' && self.at(1) == b'.' && self.at(2) == b'.'))
            && self.is_blankz(3)
    }

    /// The depth of a collection starting now: the open block collections
    /// and the open flow collections.
    fn check_depth(&self) -> Step {
        if self.indents.len() + self.flow_level > self.max_depth {
            return Err(Halt::TooDeep(self.line));
        }
        Ok(())
    }

    fn run(&mut self) -> Step {
        loop {
            self.scan_to_next_token();
            self.unroll_indent(self.column as isize);
            if self.is_z(0) {
                return Ok(());
            }
            self.fetch_next_token()?;
        }
    }

    fn fetch_next_token(&mut self) -> Step {
        let c = self.at(0);
        if self.column == 0 && c == b'%' {
            // a directive fills its line
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            while !self.is_breakz(0) {
                self.skip();
            }
            self.skip_line();
            return Ok(());
        }
        if self.document_indicator() {
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            self.skip();
            self.skip();
            self.skip();
            return Ok(());
        }
        match c {
            b'[' | b'{' => {
                self.save_simple_key();
                self.flow_level += 1;
                self.simple_keys.push(SimpleKey::default());
                self.check_depth()?;
                self.simple_key_allowed = true;
                self.skip();
            }
            b']' | b'}' => {
                self.remove_simple_key();
                if self.flow_level > 0 {
                    self.flow_level -= 1;
                    self.simple_keys.pop();
                }
                self.simple_key_allowed = false;
                self.skip();
            }
            b',' => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.skip();
            }
            b'-' if self.is_blankz(1) => {
                if self.flow_level == 0 {
                    if !self.simple_key_allowed {
                        return Err(Halt::Syntax);
                    }
                    self.roll_indent(self.column)?;
                }
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.skip();
            }
            b'?' if self.flow_level > 0 || self.is_blankz(1) => {
                if self.flow_level == 0 {
                    if !self.simple_key_allowed {
                        return Err(Halt::Syntax);
                    }
                    self.roll_indent(self.column)?;
                }
                self.remove_simple_key();
                self.simple_key_allowed = self.flow_level == 0;
                self.skip();
            }
            b':' if self.flow_level > 0 || self.is_blankz(1) => self.fetch_value()?,
            b'*' | b'&' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.skip();
                let start = self.pos;
                while is_alpha(self.at(0)) {
                    self.skip();
                }
                if self.pos == start || !(self.is_blankz(0) || b"?:,]}%@`".contains(&self.at(0))) {
                    // "did not find expected alphabetic or numeric character"
                    return Err(Halt::Syntax);
                }
            }
            b'!' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_tag()?;
            }
            b'|' | b'>' if self.flow_level == 0 => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.scan_block_scalar()?;
            }
            b'\'' | b'"' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_flow_scalar(c == b'\'')?;
            }
            _ => {
                let plain = !(self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c))
                    || (c == b'-' && !self.is_blank(1))
                    || (self.flow_level == 0 && (c == b'?' || c == b':') && !self.is_blankz(1));
                if !plain {
                    // "found character that cannot start any token"
                    return Err(Halt::Syntax);
                }
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_plain_scalar()?;
            }
        }
        Ok(())
    }

    fn scan_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.s[self.pos..].starts_with(b"\xEF\xBB\xBF") {
                self.skip();
            }
            while self.at(0) == b' '
                || ((self.flow_level > 0 || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.is_breakz(0) {
                    self.skip();
                }
            }
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
            if self.flow_level == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn roll_indent(&mut self, column: usize) -> Step {
        if self.flow_level == 0 && self.indent < column as isize {
            self.indents.push(self.indent);
            self.indent = column as isize;
            self.check_depth()?;
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow_level > 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    fn top_key(&mut self) -> &mut SimpleKey {
        // the block context's slot is never popped
        let last = self.simple_keys.len() - 1;
        &mut self.simple_keys[last]
    }

    fn save_simple_key(&mut self) {
        if self.simple_key_allowed {
            let key = SimpleKey {
                possible: true,
                line: self.line,
                index: self.pos,
                column: self.column,
            };
            *self.top_key() = key;
        }
    }

    fn remove_simple_key(&mut self) {
        self.top_key().possible = false;
    }

    fn fetch_value(&mut self) -> Step {
        let (line, pos) = (self.line, self.pos);
        let key = *self.top_key();
        // libyaml drops a key the scanner has moved a line or 1024 bytes past
        if key.possible && key.line == line && key.index + 1024 >= pos {
            self.roll_indent(key.column)?;
            self.top_key().possible = false;
            self.simple_key_allowed = false;
        } else {
            if self.flow_level == 0 {
                if !self.simple_key_allowed {
                    return Err(Halt::Syntax);
                }
                self.roll_indent(self.column)?;
            }
            self.simple_key_allowed = self.flow_level == 0;
        }
        self.skip();
        Ok(())
    }

    /// A tag: `!<uri>`, `!suffix`, `!handle!suffix` or `!`.
    fn scan_tag(&mut self) -> Step {
        if self.at(1) == b'<' {
            self.skip();
            self.skip();
            self.scan_tag_uri(true)?;
            if self.at(0) != b'>' {
                return Err(Halt::Syntax);
            }
            self.skip();
        } else {
            // the handle (`!`, `!name!`) or the start of a suffix
            self.skip();
            while is_alpha(self.at(0)) {
                self.skip();
            }
            if self.at(0) == b'!' {
                self.skip();
            }
            // whatever follows, libyaml reads a (possibly empty) URI
            self.scan_tag_uri(false)?;
        }
        if !self.is_blankz(0) && (self.flow_level == 0 || self.at(0) != b',') {
            return Err(Halt::Syntax);
        }
        Ok(())
    }

    fn scan_tag_uri(&mut self, verbatim: bool) -> Step {
        loop {
            let c = self.at(0);
            let uri = is_alpha(c)
                || b";/?:@&=+$.%!~*'()".contains(&c)
                || (verbatim && b",[]".contains(&c));
            if !uri {
                return Ok(());
            }
            if c == b'%' {
                if !(is_hex(self.at(1)) && is_hex(self.at(2))) {
                    return Err(Halt::Syntax);
                }
                self.skip();
                self.skip();
            }
            self.skip();
        }
    }

    fn scan_flow_scalar(&mut self, single: bool) -> Step {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if self.document_indicator() || self.is_z(0) {
                return Err(Halt::Syntax);
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if single && c == b'\'' && self.at(1) == b'\'' {
                    self.skip();
                    self.skip();
                } else if c == quote {
                    break;
                } else if !single && c == b'\\' && self.is_break(1) {
                    self.skip();
                    self.skip_line();
                    break;
                } else if !single && c == b'\\' {
                    let digits = match self.at(1) {
                        b'0' | b'a' | b'b' | b't' | b'\t' | b'n' | b'v' | b'f' | b'r' | b'e'
                        | b' ' | b'"' | b'/' | b'\\' | b'N' | b'_' | b'L' | b'P' => 0,
                        b'x' => 2,
                        b'u' => 4,
                        b'U' => 8,
                        _ => return Err(Halt::Syntax),
                    };
                    self.skip();
                    self.skip();
                    for _ in 0..digits {
                        if !is_hex(self.at(0)) {
                            return Err(Halt::Syntax);
                        }
                        self.skip();
                    }
                } else {
                    self.skip();
                }
            }
            if self.at(0) == quote && !self.is_z(0) {
                self.skip();
                return Ok(());
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    fn scan_plain_scalar(&mut self) -> Step {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if self.flow_level > 0 && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    // libyaml: "found unexpected ':'"
                    return Err(Halt::Syntax);
                }
                if (c == b':' && self.is_blankz(1))
                    || (self.flow_level > 0 && b",[]{}".contains(&c))
                {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    if leading_blanks && (self.column as isize) < indent && self.at(0) == b'\t' {
                        return Err(Halt::Syntax);
                    }
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow_level == 0 && (self.column as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
        Ok(())
    }

    fn scan_block_scalar(&mut self) -> Step {
        self.skip();
        let mut increment = 0isize;
        let c = self.at(0);
        if c == b'+' || c == b'-' {
            self.skip();
            if self.at(0).is_ascii_digit() {
                if self.at(0) == b'0' {
                    return Err(Halt::Syntax);
                }
                increment = (self.at(0) - b'0') as isize;
                self.skip();
            }
        } else if c.is_ascii_digit() {
            if c == b'0' {
                return Err(Halt::Syntax);
            }
            increment = (c - b'0') as isize;
            self.skip();
            if self.at(0) == b'+' || self.at(0) == b'-' {
                self.skip();
            }
        }
        while self.is_blank(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            while !self.is_breakz(0) {
                self.skip();
            }
        }
        if !self.is_breakz(0) {
            return Err(Halt::Syntax);
        }
        self.skip_line();
        let mut indent = 0isize;
        if increment != 0 {
            indent = if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            };
        }
        self.block_scalar_breaks(&mut indent)?;
        while self.column as isize == indent && !self.is_z(0) {
            while !self.is_breakz(0) {
                self.skip();
            }
            self.skip_line();
            self.block_scalar_breaks(&mut indent)?;
        }
        Ok(())
    }

    /// The empty lines of a block scalar, and its indentation when the
    /// header gave none.
    fn block_scalar_breaks(&mut self, indent: &mut isize) -> Step {
        let mut max_indent = 0isize;
        loop {
            while (*indent == 0 || (self.column as isize) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.column as isize);
            if (*indent == 0 || (self.column as isize) < *indent) && self.at(0) == b'\t' {
                return Err(Halt::Syntax);
            }
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::too_deep;

    fn nested(n: usize) -> String {
        format!("d: {}{}\n", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn counts_block_and_flow_levels() {
        // the root mapping is level 1, each bracket one more
        assert_eq!(too_deep(&nested(3), 4), None);
        assert_eq!(too_deep(&nested(4), 4), Some(0));
        assert_eq!(too_deep("a:\n  b:\n    c: [x]\n", 4), None);
        assert_eq!(too_deep("a:\n  b:\n    c: [x]\n", 3), Some(2));
        assert_eq!(too_deep("- - - - x\n", 4), None);
        assert_eq!(too_deep("- - - - - x\n", 4), Some(0));
    }

    #[test]
    fn brackets_in_scalars_and_comments_are_text() {
        let text = "a: 'x[[[['\nb: \"[[[[\\\"[[\"\nc: x[[[[\n  [[[[ continued\n# [[[[\nd: |\n  [[[[\n  {{{{\ne: >-\n    [[[\n";
        assert_eq!(too_deep(text, 2), None);
        assert_eq!(too_deep("a: [b # ]]]]\n  , [c]]\n", 2), Some(1));
    }

    #[test]
    fn a_block_scalar_ends_where_its_indentation_does() {
        // `[[[` is back in the mapping, outside the literal
        assert_eq!(too_deep("a: |\n  x\nb: [[[1]]]\n", 3), Some(2));
    }

    #[test]
    fn a_syntax_error_is_left_to_the_parser() {
        assert_eq!(too_deep("a: \"unterminated [[[[[[\n", 2), None);
        assert_eq!(too_deep("@[[[[[[[\n", 2), None);
    }
}
