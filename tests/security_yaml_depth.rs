//! Deeply nested YAML is refused while it is read, not after: the depth
//! limit (`yaml::Limits::max_depth`) is checked by a scan that follows the
//! YAML scanner's rules before the parser runs (issue 17, H7), and that
//! scan never refuses what the parser accepts within the limit.

use std::path::Path;
use std::process::Command;

use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::DirSource;
use driftless::yaml::{self, backend, Limits};
use proptest::prelude::*;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// `kubectl kustomize dir`: its objects, or its error.
fn kubectl(dir: &Path) -> Result<Vec<serde_json::Value>, String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required for this test and could not be run: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(yaml::load_documents("kubectl", &text, &Limits::default()).unwrap())
}

fn ours(dir: &Path) -> Result<Vec<serde_json::Value>, String> {
    let tree = DirSource::new(dir).read_tree().map_err(|e| e.to_string())?;
    build(&tree, "", &KustomizeOptions::default())
        .map(|r| r.objects.into_iter().map(|o| o.into_value()).collect())
        .map_err(|e| e.to_string())
}

fn config_map_with(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  d: {value}\n")
}

/// The input: `d: [[[…]]]` with 200,000 levels (400 KB). Before,
/// the parser read all of it first (minutes); kubectl refuses it too.
#[test]
fn flow_nesting_of_200k_levels_is_refused_naming_file_and_line() {
    let n = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let deep = config_map_with(&format!("{}{}", "[".repeat(n), "]".repeat(n)));
    write(
        dir.path(),
        &[
            ("kustomization.yaml", "resources:\n- deep.yaml\n"),
            ("deep.yaml", &deep),
        ],
    );
    let e = ours(dir.path()).unwrap_err();
    assert!(
        e.contains("deep.yaml:6: document is nested deeper than 128 levels"),
        "{e}"
    );
    let k = kubectl(dir.path()).unwrap_err();
    assert!(k.contains("exceeded max depth"), "{k}");
}

/// The refusal comes where the limit is crossed: a syntax error at the end
/// of the document is never reached (before, the parser read to the end
/// and reported that error instead).
#[test]
fn depth_is_refused_before_the_rest_of_the_document_is_read() {
    let text = format!(
        "a: 1\nb: {}{}\nc: \"never closed\n",
        "[".repeat(300),
        "]".repeat(300)
    );
    let e = yaml::load_documents("f.yaml", &text, &Limits::default()).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert_eq!(
        e.message, "document is nested deeper than 128 levels",
        "{e}"
    );
    let e = yaml::from_str::<serde_json::Value>("g.yaml", &text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "g.yaml:2: document is nested deeper than 128 levels"
    );
    // block nesting counts too: `- - - …` on one line
    let text = format!("{}x\nc: \"never closed\n", "- ".repeat(300));
    let e = yaml::load_documents("h.yaml", &text, &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "h.yaml:1: document is nested deeper than 128 levels"
    );
    // and the second document of a stream names its own line
    let text = format!(
        "a: 1\n---\nb:\n  c: {}{}\n",
        "{x: ".repeat(200),
        "}".repeat(200)
    );
    let e = yaml::load_documents("i.yaml", &text, &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "i.yaml:4: document is nested deeper than 128 levels"
    );
}

/// The limit is exact for flow collections: the root mapping is level 1,
/// so 127 brackets fit in 128 levels and 128 do not.
#[test]
fn the_limit_is_the_documented_depth() {
    let limits = Limits::default();
    assert_eq!(limits.max_depth, 128);
    let fits = format!("d: {}{}\n", "[".repeat(127), "]".repeat(127));
    let docs = yaml::load_documents("f.yaml", &fits, &limits).unwrap();
    assert_eq!(docs.len(), 1);
    let over = format!("d: {}{}\n", "[".repeat(128), "]".repeat(128));
    let e = yaml::check_depth("f.yaml", &over, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "f.yaml:1: document is nested deeper than 128 levels"
    );
}

/// Brackets that are text (in quotes, block scalars, multi-line plain
/// scalars, comments, tags) are not nesting: a resource holding 300-level
/// bracket strings renders exactly as `kubectl kustomize` renders it.
#[test]
fn brackets_in_scalars_and_comments_are_not_nesting() {
    let b = "[".repeat(300);
    let c = "{".repeat(300);
    let resource = format!(
        "apiVersion: example.com/v1\n\
         kind: Deep\n\
         metadata:\n  name: text # {b}\n\
         spec:\n\
         \x20 literal: |\n    {b}\n    {c}\n  after: [x, [y]]\n\
         \x20 folded: >-\n      {b}\n\n      {c}\n\
         \x20 single: '{b} '' {c}'\n\
         \x20 double: \"{b} \\\" {c} \\\\\"\n\
         \x20 plain: a{b}\n    {c} continued\n\
         \x20 flow: ['b{c}', \"{b}\", # {b}\n    a:b, ok]\n\
         \x20 tagged: !!str a{b}\n\
         \x20 deep: {open}1{close}\n",
        open = "[".repeat(100),
        close = "]".repeat(100),
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("kustomization.yaml", "resources:\n- deep.yaml\n"),
            ("deep.yaml", &resource),
        ],
    );
    let want = kubectl(dir.path()).unwrap();
    let got = ours(dir.path()).unwrap();
    assert_eq!(got, want);
    assert_eq!(got[0]["spec"]["single"], format!("{b} ' {c}"));
}

/// The depth of a parsed value as the loader counts it: the root is 1,
/// each element, key and value one more than its collection.
fn value_depth(v: &backend::Value) -> usize {
    match v {
        backend::Value::Sequence(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        backend::Value::Mapping(map) => {
            1 + map
                .iter()
                .map(|(k, v)| value_depth(k).max(value_depth(v)))
                .max()
                .unwrap_or(0)
        }
        backend::Value::Tagged(t) => value_depth(&t.value),
        _ => 1,
    }
}

/// Lines built to make the scanner's hard cases meet: indentation, block
/// scalars holding brackets, quotes, comments, flow collections over
/// lines, explicit keys, anchors and tags.
const LINES: &[&str] = &[
    "k: v",
    "k:",
    "- x",
    "- ",
    "-",
    "- - x",
    "- k: v",
    "k: [",
    "k: {",
    "[",
    "{",
    "]",
    "}",
    "],",
    "},",
    "a, b,",
    "[a, [b, {c: d}]]",
    "{a: [b], c: {d: e}}",
    "k: [[x]]",
    "- [x, [y]]",
    "k: |",
    "k: >-",
    "k: |2",
    "- |",
    "text [[ {{ ]]",
    "[[[[",
    "{{{{",
    "# [[[[",
    "k: v # [[[[",
    "k: 'a[b'",
    "k: 'it''s [['",
    "k: \"a\\\"[[\"",
    "k: \"multi [[",
    "line ]]\"",
    "k: a[b",
    "k: a[[",
    "  [[ continued",
    "? k",
    "? [a]",
    ": v",
    "k: &a [x]",
    "k: *a",
    "k: !t [x]",
    "k: !<tag:x,[]> [x]",
    "&a k: [x]",
    "'q': [x]",
    "\"q\": [x]",
    "[a]: b",
    "k: [a,",
    "  b]",
    "",
    "\t",
    "---",
    "...",
    "%YAML 1.1",
    "k: a#[[",
    "[a#b, [c]]",
    "k: a # [[",
    "[a, |, [b]]",
    "[a, >, [b]]",
    "k: 'x [",
    "k: \"x [",
    "--- [[",
    "--- |",
    "... [[",
    "- > [[",
    "k: ![x] [y]",
    "k: !x,[ y",
    "k: &a[ b",
    "k: *a[ b",
    "? - [x",
    "k:\t[x]",
    "\t- [x]",
    "k: [x]: [y]",
    "[a: [b], c:d]",
    "k: \"\\x4[\"",
    "k: \"\\\n",
    "{a: [b, {c: [d]}]}",
    "\u{FEFF}k: [x]",
    "k: \u{85}[x]",
    "k: é[x]",
];

fn soup(choices: &[(u8, u8)], crlf: bool) -> String {
    let mut text = String::new();
    for &(line, indent) in choices {
        text.push_str(&" ".repeat(usize::from(indent % 7)));
        text.push_str(LINES[usize::from(line) % LINES.len()]);
        text.push_str(if crlf { "\r\n" } else { "\n" });
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whatever the backend parses within the limit, the depth check
    /// accepts; and where it refuses, the parsed value (if any) is deeper
    /// than the limit.
    #[test]
    fn the_depth_check_never_refuses_what_the_parser_accepts(
        choices in proptest::collection::vec((any::<u8>(), any::<u8>()), 1..14),
        crlf in any::<bool>(),
        max_depth in 1usize..6,
    ) {
        let text = soup(&choices, crlf);
        let limits = Limits { max_depth, ..Limits::default() };
        if let Ok(value) = backend::from_str::<backend::Value>(&text) {
            let depth = value_depth(&value);
            let check = yaml::check_depth("f.yaml", &text, &limits);
            prop_assert!(
                depth > max_depth || check.is_ok(),
                "refused {text:?} (depth {depth}, limit {max_depth}): {check:?}"
            );
        }
    }

    /// For flow collections alone (JSON), the check is exact: it refuses
    /// exactly the documents the loader refuses for their depth.
    #[test]
    fn the_depth_check_is_exact_on_flow_collections(
        value in arb_json(),
        max_depth in 1usize..8,
    ) {
        let text = serde_json::to_string(&value).unwrap();
        let limits = Limits { max_depth, ..Limits::default() };
        let parsed: backend::Value = backend::from_str(&text).unwrap();
        let containers = container_depth(&parsed);
        let check = yaml::check_depth("f.json", &text, &limits);
        prop_assert_eq!(check.is_err(), containers > max_depth, "{}", text);
        if containers > max_depth {
            prop_assert!(yaml::load_documents("f.json", &text, &limits).is_err());
        }
    }
}

/// The depth libyaml's scanner reaches: at each collection start token,
/// the open block and flow collections, up to the end or the first
/// scanner error (`true` when there was one).
fn scanner_depth(text: &str) -> (usize, bool) {
    use unsafe_libyaml as unsafe_ly;
    let (mut block, mut flow, mut max) = (0usize, 0usize, 0usize);
    let mut failed = false;
    // SAFETY: the parser is initialized before use and deleted once; the
    // input outlives it; each token is deleted after it is read.
    unsafe {
        let mut parser = std::mem::MaybeUninit::<unsafe_ly::yaml_parser_t>::uninit();
        assert!(unsafe_ly::yaml_parser_initialize(parser.as_mut_ptr()).ok);
        let parser = parser.as_mut_ptr();
        unsafe_ly::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        loop {
            let mut token = std::mem::MaybeUninit::<unsafe_ly::yaml_token_t>::uninit();
            if !unsafe_ly::yaml_parser_scan(parser, token.as_mut_ptr()).ok {
                failed = true;
                break;
            }
            let token = token.as_mut_ptr();
            let kind = (*token).type_;
            unsafe_ly::yaml_token_delete(token);
            match kind {
                unsafe_ly::YAML_BLOCK_SEQUENCE_START_TOKEN
                | unsafe_ly::YAML_BLOCK_MAPPING_START_TOKEN => {
                    block += 1;
                    max = max.max(block + flow);
                }
                unsafe_ly::YAML_BLOCK_END_TOKEN => block -= 1,
                unsafe_ly::YAML_FLOW_SEQUENCE_START_TOKEN
                | unsafe_ly::YAML_FLOW_MAPPING_START_TOKEN => {
                    flow += 1;
                    max = max.max(block + flow);
                }
                unsafe_ly::YAML_FLOW_SEQUENCE_END_TOKEN
                | unsafe_ly::YAML_FLOW_MAPPING_END_TOKEN => flow = flow.saturating_sub(1),
                unsafe_ly::YAML_STREAM_END_TOKEN | unsafe_ly::YAML_NO_TOKEN => break,
                _ => {}
            }
        }
        unsafe_ly::yaml_parser_delete(parser);
    }
    (max, failed)
}

/// The smallest limit the depth check accepts `text` under.
fn checked_depth(text: &str) -> usize {
    (0..)
        .find(|&max_depth| {
            let limits = Limits {
                max_depth,
                ..Limits::default()
            };
            yaml::check_depth("f.yaml", text, &limits).is_ok()
        })
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// libyaml's scanner is the oracle: every collection it opens, the
    /// check counts (a flow collection that becomes a block mapping's key
    /// is counted before the mapping starts, hence the one level), and
    /// where the scanner reads the whole text, the check never counts
    /// more than it does. Invalid text included: what matters is what the
    /// scanner reads before it stops.
    #[test]
    fn the_depth_check_follows_libyaml_s_scanner(
        choices in proptest::collection::vec((any::<u8>(), any::<u8>()), 1..14),
        crlf in any::<bool>(),
    ) {
        let text = soup(&choices, crlf);
        let (scanned, failed) = scanner_depth(&text);
        let checked = checked_depth(&text);
        prop_assert!(scanned <= checked + 1, "{text:?}: scanner {scanned}, check {checked}");
        if !failed {
            prop_assert!(checked <= scanned, "{text:?}: scanner {scanned}, check {checked}");
        }
    }
}

/// The nesting of collections alone (scalars do not count).
fn container_depth(v: &backend::Value) -> usize {
    match v {
        backend::Value::Sequence(items) => 1 + items.iter().map(container_depth).max().unwrap_or(0),
        backend::Value::Mapping(map) => 1 + map.values().map(container_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        "[a-z\\[\\]{},:# '\"]{0,6}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(10, 40, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z\\[{]{1,3}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
