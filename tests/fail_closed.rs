//! Issue 13: a typo never deletes anything. A file that does not parse
//! fails the run, names the file and writes nothing.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::*;

/// Every file under `dir` with its bytes, for byte-for-byte comparisons of
/// a persisted state folder.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The repro of issue 13: in a copy of the demo fleet, after one good
/// reconcile, the colon after `dependsOn` is dropped in
/// `clusters/production/apps.yaml` (a folder without a kustomization).
/// The next reconcile used to exit 0 and delete the apps Kustomization and
/// its objects. Now it is not Ready (BuildFailed), names the file and the
/// line, and the state folder is byte-identical.
#[test]
fn a_dropped_colon_in_a_generated_folder_fails_the_build_and_deletes_nothing() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().join("s");
    let st = st.to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = ["--repo", repo.as_str(), "--state", st.as_str(), &tenant];

    let out = run_example("reconcile", &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let before = files(Path::new(&st));
    assert!(before.keys().any(|f| f.contains("Deployment/apps/app1")));

    edit_file(
        &fleet.path().join("clusters/production/apps.yaml"),
        "dependsOn:",
        "dependsOn",
    );
    let out = run_example("reconcile", &args);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        o.contains("Kustomization/flux-system/flux-system")
            && o.contains("Ready=False BuildFailed: clusters/production/apps.yaml:"),
        "{o}"
    );
    assert!(
        e.contains("clusters/production/apps.yaml:"),
        "the error names the file and the line: {e}"
    );
    assert!(!o.contains(" deleted\n"), "nothing is deleted: {o}");
    assert_eq!(
        files(Path::new(&st)),
        before,
        "the state is byte-identical after a failed build"
    );
}
