//! The Go template engine against Go's own: every case in
//! `tests/fixtures/gotmpl/cases.txt` runs through `driftless::gotmpl`
//! and must print what Go's `text/template` with Sprig printed for it, or
//! fail with the same error text. The expected outputs in `expected.json`
//! were recorded by `record.py` with a Helm binary (Helm v4.1.4, whose
//! values are `common.Values`; the test names its map type the same way),
//! which runs each case through `tpl` over `.Values`.

use std::collections::BTreeMap;
use std::rc::Rc;

use driftless::gotmpl::{self, MapType, MissingKey, Templates, Value};

fn cases(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    let mut lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.starts_with('#') && name.is_none() {
            continue;
        }
        if let Some(n) = line.strip_prefix("== ") {
            if let Some(prev) = name.take() {
                out.push((prev, lines.join("\n")));
            }
            name = Some(n.trim().to_string());
            lines.clear();
        } else {
            lines.push(line);
        }
    }
    if let Some(prev) = name {
        out.push((prev, lines.join("\n")));
    }
    out
}

/// The Go error inside Helm's `tpl` wrapper.
fn inner_error(helm: &str) -> String {
    let start = helm
        .rfind("\": template: gotpl:")
        .map(|i| i + 3)
        .expect("a Go template error");
    helm[start..]
        .trim_end_matches('\n')
        .trim_end_matches("Use --debug flag to render out invalid YAML")
        .trim_end()
        .to_string()
}

#[test]
fn engine_agrees_with_go() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gotmpl");
    let text = std::fs::read_to_string(format!("{dir}/cases.txt")).unwrap();
    let values: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/values.json")).unwrap())
            .unwrap();
    let expected: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/expected.json")).unwrap())
            .unwrap();
    let funcs = Rc::new(gotmpl::sprig::funcs());
    let mut failures = Vec::new();
    let all = cases(&text);
    assert!(all.len() >= 40, "cases.txt lost its cases");
    for (name, body) in &all {
        let want = &expected[name];
        let dot = match Value::from_json(&values) {
            Value::Map(m) => Value::typed_map(
                MapType::Named("common.Values".into()),
                m.borrow().entries.clone(),
            ),
            other => other,
        };
        let mut set = Templates::new("gotpl", funcs.clone());
        set.missing_key = MissingKey::Zero;
        let got = set
            .parse("gotpl", body)
            .and_then(|_| gotmpl::render(&Rc::new(set), "gotpl", &dot))
            .map(|s| s.replace("<no value>", ""));
        match (want.get("output"), want.get("error"), got) {
            (Some(w), _, Ok(g)) if w.as_str() == Some(g.as_str()) => {}
            (_, Some(e), Err(g)) if inner_error(e.as_str().unwrap()) == g.to_string() => {}
            (w, e, g) => failures.push(format!(
                "{name}:\n  want: {}\n  got:  {g:?}",
                w.or(e)
                    .map(|x| match x.as_str() {
                        Some(s) if e.is_some() => inner_error(s),
                        _ => x.to_string(),
                    })
                    .unwrap_or_default()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Go:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
