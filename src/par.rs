//! Scoped worker threads for the pure stages (plan, render) on large
//! inputs. The work is split into contiguous runs, one per thread, and the
//! results come back in run order, so the output never depends on the
//! thread count or on scheduling.

/// Runs `f(offset, run)` over `items` split into up to `threads`
/// contiguous runs (`offset` is the index of the run's first item), on
/// scoped threads, and returns the results in run order. With one thread,
/// or one item, `f` runs once on the calling thread over everything.
/// A panic in `f` is resumed on the calling thread.
pub(crate) fn in_runs<T, R, F>(items: &mut [T], threads: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(usize, &mut [T]) -> R + Sync,
{
    let threads = threads.clamp(1, 64);
    if threads < 2 || items.len() < 2 {
        return vec![f(0, items)];
    }
    let per_run = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks_mut(per_run)
            .enumerate()
            .map(|(n, run)| scope.spawn(move || f(n * per_run, run)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Sorts `items` stably by `cmp`: each of up to `threads` runs is sorted on
/// its own thread, then the runs are merged (the earlier run first on
/// ties), so the result is that of one stable sort for any thread count.
pub(crate) fn sort_by<T, F>(items: &mut Vec<T>, threads: usize, cmp: F)
where
    T: Send,
    F: Fn(&T, &T) -> std::cmp::Ordering + Sync,
{
    let runs = in_runs(items, threads, |_, run| {
        run.sort_by(&cmp);
        run.len()
    });
    if runs.len() < 2 {
        return;
    }
    let mut merged: Vec<Vec<T>> = Vec::with_capacity(runs.len());
    let mut rest = std::mem::take(items);
    for len in runs.iter().rev() {
        let tail = rest.split_off(rest.len() - len);
        merged.push(tail);
    }
    merged.reverse();
    // merge pairwise, left to right, until one run is left
    while merged.len() > 1 {
        let mut next = Vec::with_capacity(merged.len().div_ceil(2));
        let mut it = merged.into_iter();
        while let Some(left) = it.next() {
            match it.next() {
                Some(right) => next.push(merge(left, right, &cmp)),
                None => next.push(left),
            }
        }
        merged = next;
    }
    *items = merged.pop().unwrap_or_default();
}

fn merge<T, F: Fn(&T, &T) -> std::cmp::Ordering>(left: Vec<T>, right: Vec<T>, cmp: &F) -> Vec<T> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => cmp(b, a) != std::cmp::Ordering::Less,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { l.next() } else { r.next() };
        out.extend(next);
    }
    out
}

/// The machine's parallelism (1 when it cannot be read).
pub(crate) fn available() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_item_once_in_order() {
        for threads in [1, 2, 3, 8, 100] {
            let mut items: Vec<usize> = (0..10).collect();
            let runs = in_runs(&mut items, threads, |offset, run| {
                run.iter_mut().for_each(|i| *i *= 10);
                (offset, run.to_vec())
            });
            let flat: Vec<usize> = runs.iter().flat_map(|(_, r)| r.clone()).collect();
            assert_eq!(flat, (0..10).map(|i| i * 10).collect::<Vec<_>>());
            let mut expected_offset = 0;
            for (offset, run) in &runs {
                assert_eq!(*offset, expected_offset);
                expected_offset += run.len();
            }
            assert_eq!(items, flat);
        }
        for threads in [1, 2, 3, 8] {
            // ties keep their input order, as one stable sort would
            let mut pairs: Vec<(u8, usize)> = (0..50).map(|i| ((i * 7 % 5) as u8, i)).collect();
            let mut expected = pairs.clone();
            expected.sort_by_key(|p| p.0);
            sort_by(&mut pairs, threads, |a, b| a.0.cmp(&b.0));
            assert_eq!(pairs, expected, "{threads} threads");
        }
        let mut none: Vec<u8> = Vec::new();
        assert_eq!(in_runs(&mut none, 4, |o, r| (o, r.len())), vec![(0, 0)]);
    }
}
