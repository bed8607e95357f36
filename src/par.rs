//! Scoped worker threads for the pure stages (plan, render) on large
//! inputs. The work is split into contiguous runs, one per thread, or into
//! chunks the threads take in turn; either way the results come back in
//! input order, so the output never depends on the thread count or on
//! scheduling.

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

/// Runs `f(offset, chunk)` over `items` cut into chunks of `chunk` items,
/// on up to `threads` threads (the caller's included) that each take the
/// next chunk when done with one, so a thread slowed by the machine does
/// not hold the others back. The results come back in chunk order, so they
/// never depend on the thread count or on scheduling. A panic in `f` is
/// resumed on the calling thread.
pub(crate) fn in_chunks<T, R, F>(items: &[T], threads: usize, chunk: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &[T]) -> R + Sync,
{
    let chunk = chunk.max(1);
    let chunks: Vec<&[T]> = items.chunks(chunk).collect();
    let threads = threads.clamp(1, 64).min(chunks.len());
    if threads < 2 {
        return chunks
            .iter()
            .enumerate()
            .map(|(n, c)| f(n * chunk, c))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(c) = chunks.get(n) else {
                return done;
            };
            done.push((n, f(n * chunk, c)));
        }
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for h in helpers {
            done.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        done
    });
    done.sort_unstable_by_key(|(n, _)| *n);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The vectors joined in order (the first one's buffer is reused).
pub(crate) fn concat<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    let mut parts = parts.into_iter();
    let mut all = parts.next().unwrap_or_default();
    for mut part in parts {
        all.append(&mut part);
    }
    all
}

/// Runs `a` and `b`, side by side when `threads` allows two, and returns
/// both results. A panic in either is resumed on the calling thread.
pub(crate) fn join<A, B, RA, RB>(threads: usize, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if threads < 2 {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let other = scope.spawn(b);
        let ra = a();
        let rb = other
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (ra, rb)
    })
}

/// The machine's parallelism (1 when it cannot be read).
pub(crate) fn available() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_item_once_in_order_and_join_returns_both() {
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
        for threads in [1, 2, 8] {
            let (a, b) = join(threads, || 1 + 1, || "two");
            assert_eq!((a, b), (2, "two"));
            let items: Vec<usize> = (0..103).collect();
            let chunks = in_chunks(&items, threads, 10, |offset, c| (offset, c.to_vec()));
            assert_eq!(chunks.len(), 11);
            assert!(chunks.iter().all(|(offset, c)| c[0] == *offset));
            let flat: Vec<usize> = chunks.into_iter().flat_map(|(_, c)| c).collect();
            assert_eq!(flat, items);
        }
        let mut none: Vec<u8> = Vec::new();
        assert_eq!(in_runs(&mut none, 4, |o, r| (o, r.len())), vec![(0, 0)]);
    }
}
