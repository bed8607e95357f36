//! The prune guard: a plan that would delete more than a set share of what
//! a reconciler owns stops before any write.
//!
//! None of Flux, Argo CD or kubectl has one. A one-character typo that
//! drops a file (or a whole Kustomization) from a render turns into a prune;
//! the guard turns a prune of most of an inventory into an error that lists
//! what would have been deleted and how to allow it.
//!
//! The rules, for a limit `L` over an inventory of `n` entries and a plan
//! deleting `d` of them:
//!
//! - `Count(N)`: allowed when `d <= N`.
//! - `Percent(P)`: allowed when `d * 100 <= P * n` (exact integer
//!   arithmetic, so the allowed count is `floor(P * n / 100)`: 50% of 3
//!   entries allows 1 deletion). `100%` allows any prune, `0%` none.
//! - An empty inventory deletes nothing (prune only deletes what the
//!   inventory records), so every limit allows it.
//! - Only deletions count: objects whose pruning is off or disabled
//!   (`Skipped`) and objects deleted to be created again (`force` on an
//!   immutable change) do not.
//! - A Kustomization that the plan deletes garbage-collects its own
//!   inventory (Flux's finalizer), and those inventories' nested
//!   Kustomizations theirs: the fleet counts every one of those entries as
//!   deleted and adds them to `n` too, so the limit covers everything the
//!   run would delete.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How much of an inventory one run may prune: a count or a percentage.
///
/// Parses from `N` (a count) or `P%` (a percentage, 0 to 100):
///
/// ```
/// use driftless::plan::MaxPrune;
///
/// assert_eq!("5".parse::<MaxPrune>().unwrap(), MaxPrune::Count(5));
/// assert_eq!("50%".parse::<MaxPrune>().unwrap(), MaxPrune::Percent(50));
/// assert!(MaxPrune::Percent(50).allows(1, 3));
/// assert!(!MaxPrune::Percent(50).allows(2, 3));
/// assert!("101%".parse::<MaxPrune>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxPrune {
    /// At most this many deletions.
    Count(usize),
    /// At most this share of the inventory, in percent (0 to 100).
    Percent(u8),
}

impl MaxPrune {
    /// Allows any prune (`100%`).
    pub const ANY: MaxPrune = MaxPrune::Percent(100);

    /// True when deleting `deleted` of `inventory` entries is allowed.
    pub fn allows(&self, deleted: usize, inventory: usize) -> bool {
        match *self {
            MaxPrune::Count(n) => deleted <= n,
            MaxPrune::Percent(p) => (deleted as u128) * 100 <= u128::from(p) * (inventory as u128),
        }
    }

    /// The most deletions allowed from an inventory of `inventory` entries.
    pub fn limit(&self, inventory: usize) -> usize {
        match *self {
            MaxPrune::Count(n) => n,
            MaxPrune::Percent(p) => {
                let n = u128::from(p) * (inventory as u128) / 100;
                usize::try_from(n).unwrap_or(usize::MAX)
            }
        }
    }
}

impl fmt::Display for MaxPrune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxPrune::Count(n) => write!(f, "{n}"),
            MaxPrune::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A limit that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid prune limit {input:?}: expected a count (e.g. 10) or a percentage from 0% to 100% (e.g. 50%)")]
pub struct MaxPruneError {
    /// What was given.
    pub input: String,
}

impl FromStr for MaxPrune {
    type Err = MaxPruneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MaxPruneError {
            input: s.to_string(),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        match s.strip_suffix('%') {
            Some(p) if digits(p) => match p.parse::<u8>() {
                Ok(p) if p <= 100 => Ok(MaxPrune::Percent(p)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
            None if digits(s) => s.parse().map(MaxPrune::Count).map_err(|_| bad()),
            None => Err(bad()),
        }
    }
}

impl Serialize for MaxPrune {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaxPrune {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A plan that would prune more than its limit allows; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", prune_limit_message(self))]
#[non_exhaustive]
pub struct PruneLimitError {
    /// The limit.
    pub limit: MaxPrune,
    /// The entries of the inventories concerned (the reconciler's own, plus
    /// those of the Kustomizations it would delete).
    pub inventory: usize,
    /// What would have been deleted (`Kind/ns/name`): the plan's own
    /// deletions in delete order, then the entries of each inventory a
    /// deleted Kustomization garbage-collects, in inventory order.
    pub would_delete: Vec<String>,
}

fn prune_limit_message(e: &PruneLimitError) -> String {
    format!(
        "prune limit exceeded: the plan would delete {} of {} inventory entries, more than the limit {} allows ({}); nothing was changed. It would delete: {}. To allow it, run again with a higher limit (--max-prune {}, or --max-prune 100% for any prune), or restore the objects in Git",
        e.would_delete.len(),
        e.inventory,
        e.limit,
        e.limit.limit(e.inventory),
        e.would_delete.join(", "),
        e.would_delete.len(),
    )
}

/// Checks `would_delete` (out of `inventory` entries) against `limit`;
/// `None` allows anything (Flux's behaviour).
pub fn check_prune(
    limit: Option<MaxPrune>,
    would_delete: Vec<String>,
    inventory: usize,
) -> Result<(), PruneLimitError> {
    match limit {
        Some(limit) if !limit.allows(would_delete.len(), inventory) => Err(PruneLimitError {
            limit,
            inventory,
            would_delete,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!("0".parse::<MaxPrune>(), Ok(MaxPrune::Count(0)));
        assert_eq!("12".parse::<MaxPrune>(), Ok(MaxPrune::Count(12)));
        assert_eq!("0%".parse::<MaxPrune>(), Ok(MaxPrune::Percent(0)));
        assert_eq!("100%".parse::<MaxPrune>(), Ok(MaxPrune::ANY));
        for bad in [
            "", "%", "-1", "1.5", "50 %", " 5", "101%", "256%", "x", "5%%", "+3",
        ] {
            assert!(bad.parse::<MaxPrune>().is_err(), "{bad:?}");
        }
        for l in [MaxPrune::Count(7), MaxPrune::Percent(33)] {
            assert_eq!(l.to_string().parse::<MaxPrune>(), Ok(l));
        }
    }

    #[test]
    fn percentages_round_down_and_empty_inventories_pass() {
        let half = MaxPrune::Percent(50);
        assert_eq!(half.limit(3), 1);
        assert!(half.allows(1, 3) && !half.allows(2, 3));
        assert!(half.allows(2, 4) && !half.allows(3, 4));
        assert!(half.allows(0, 0));
        assert!(MaxPrune::Percent(0).allows(0, 10) && !MaxPrune::Percent(0).allows(1, 10));
        assert!(MaxPrune::ANY.allows(10, 10));
        assert!(MaxPrune::ANY.allows(usize::MAX, usize::MAX));
        assert!(MaxPrune::Count(2).allows(2, 2) && !MaxPrune::Count(2).allows(3, 100));
        assert!(check_prune(None, vec!["a".into(); 5], 5).is_ok());
    }

    #[test]
    fn the_error_lists_what_and_how() {
        let e = check_prune(
            Some(MaxPrune::Percent(50)),
            vec!["ConfigMap/a/x".into(), "ConfigMap/a/y".into()],
            3,
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("would delete 2 of 3 inventory entries"), "{m}");
        assert!(m.contains("the limit 50% allows (1)"), "{m}");
        assert!(m.contains("ConfigMap/a/x, ConfigMap/a/y"), "{m}");
        assert!(m.contains("--max-prune 2"), "{m}");
        assert!(m.contains("--max-prune 100%"), "{m}");
    }
}
