//! Flags the fleet examples (`reconcile`, `diff`) share: Flux's
//! multi-tenancy lockdown, on by default, and `--local-sources`.

use driftless::fleet::FleetOptions;
use driftless::ObjectId;

/// Flux's multi-tenancy lockdown, as the controllers' flags. Both are on
/// unless turned off: `--default-service-account=` and
/// `--no-cross-namespace-refs=false`.
#[derive(clap::Args, Debug, Clone)]
pub struct Lockdown {
    /// Flux's `--default-service-account`: a Kustomization that names no
    /// `serviceAccountName` impersonates this ServiceAccount of its own
    /// namespace (the root acts as the reconciler; platform Kustomizations
    /// name `serviceAccountName: kustomize-controller`). Empty for none:
    /// such a Kustomization then acts as the Kustomization that created it.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub default_service_account: String,
    /// Flux's `--no-cross-namespace-refs`: a Kustomization may only build
    /// from a source in its own namespace (others fail with AccessDenied).
    /// `--no-cross-namespace-refs=false` permits other namespaces.
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub no_cross_namespace_refs: bool,
}

impl Lockdown {
    /// Sets the lockdown options of a fleet run.
    pub fn apply_to(&self, options: &mut FleetOptions) {
        options.default_service_account =
            Some(self.default_service_account.clone()).filter(|sa| !sa.is_empty());
        options.no_cross_namespace_refs = self.no_cross_namespace_refs;
    }
}

/// The sources of the bundled demo fleet besides its root: team-a's own
/// GitRepository (`tenants/team-a/flux.yaml`), whose files are in the demo
/// folder too.
pub fn demo_sources(demo: &str) -> Vec<String> {
    vec![format!("GitRepository/team-a/team-a={demo}")]
}

/// Parses a `--local-sources` entry, `Kind/ns/name=<folder or URL>`.
pub fn local_source(m: &str) -> Result<(ObjectId, String), String> {
    let bad = || format!("--local-sources {m:?}: expected Kind/ns/name=<folder or URL>");
    let (subject, location) = m.split_once('=').ok_or_else(bad)?;
    let parts: Vec<&str> = subject.split('/').collect();
    let [kind, ns, name] = parts.as_slice() else {
        return Err(bad());
    };
    Ok((
        ObjectId::new("source.toolkit.fluxcd.io", kind, ns, name),
        location.to_string(),
    ))
}
