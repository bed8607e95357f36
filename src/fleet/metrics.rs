//! Flux's controller metrics in the Prometheus text format.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Records `gotk_reconcile_duration_seconds{kind,name,namespace}` and
/// `gotk_reconcile_condition{kind,name,namespace,type,status}`.
pub struct Metrics {
    registry: Registry,
    durations: Family<Labels, Histogram>,
    conditions: Family<Labels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn labels(kind: &str, name: &str, namespace: &str) -> Labels {
    vec![
        ("kind".to_string(), kind.to_string()),
        ("name".to_string(), name.to_string()),
        ("namespace".to_string(), namespace.to_string()),
    ]
}

impl Metrics {
    /// A fresh registry with Flux's buckets.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let durations = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
            ])
        });
        registry.register(
            "gotk_reconcile_duration_seconds",
            "The duration in seconds of a GitOps Toolkit resource reconciliation.",
            durations.clone(),
        );
        let conditions = Family::<Labels, Gauge>::default();
        registry.register(
            "gotk_reconcile_condition",
            "The current condition status of a GitOps Toolkit resource reconciliation.",
            conditions.clone(),
        );
        Metrics {
            registry,
            durations,
            conditions,
        }
    }

    /// Records one reconcile's duration.
    pub fn observe_duration(&self, kind: &str, name: &str, namespace: &str, d: Duration) {
        self.durations
            .get_or_create(&labels(kind, name, namespace))
            .observe(d.as_secs_f64());
    }

    /// Records the Ready condition: 1 for the current status, 0 for the others.
    pub fn record_ready(&self, kind: &str, name: &str, namespace: &str, ready: bool) {
        for (status, on) in [("True", ready), ("False", !ready)] {
            let mut l = labels(kind, name, namespace);
            l.push(("type".to_string(), "Ready".to_string()));
            l.push(("status".to_string(), status.to_string()));
            self.conditions.get_or_create(&l).set(i64::from(on));
        }
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // writing to a String cannot fail
        let _ = encode(&mut out, &self.registry);
        out
    }
}
