//! Fork-join on persistent helper threads, one small pool per calling
//! thread.
//!
//! The executor splits every block several times (sender recovery, the
//! prefetch's account walks, discovery rounds, the parallel run, the
//! receipts root's leaves). Spawning scoped threads for each split cost
//! more than some of the work it split: every new thread gets a fresh
//! stack and a fresh allocator cache, and with jemalloc each block's
//! short-lived threads faulted in new pages (a 2,000-transfer block:
//! ~2,700 page faults; on 2 cores the parallel block took 12.9 ms with
//! scoped threads against 8.9 ms under an allocator that reuses the
//! exited threads' memory).
//!
//! Here the calling thread runs the first part itself and hands the rest
//! to helpers that live as long as it does: a [`rayon`] pool built lazily
//! by, and kept in, the calling thread. Built from the caller, the helpers
//! inherit its CPU affinity, so a node role pinned by its hardware profile
//! keeps its workers on its own cores, as scoped threads did. The pool
//! grows when a caller asks for more helpers than it has. If no pool can
//! be built (the process is out of threads), every part runs on the
//! caller, in order: slower, never wrong, since no caller waits for a
//! part to start.

use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// This thread's helpers, built on first use.
    static HELPERS: RefCell<Option<Arc<rayon::ThreadPool>>> = const { RefCell::new(None) };
    /// This thread's one helper for work beside its own (see [`beside`]),
    /// built on first use.
    static BESIDE: RefCell<Option<Arc<rayon::ThreadPool>>> = const { RefCell::new(None) };
}

/// Runs `background` on a helper of its own while `on_caller` runs on this
/// thread, and returns both once both have returned. `on_caller` may split
/// its work with [`map`] or [`join_with`]: their helpers are another pool,
/// so neither part waits for the other to start. For I/O beside
/// computation (a prefetch reads its senders while it discovers which
/// slots to read). Without a helper, `background` runs first, then
/// `on_caller`, on this thread. A panic in either is resumed here.
pub(crate) fn beside<A: Send, B>(
    background: impl FnOnce() -> A + Send,
    on_caller: impl FnOnce() -> B,
) -> (A, B) {
    let Some(pool) = own_pool(&BESIDE, 1, "b") else {
        let done = background();
        return (done, on_caller());
    };
    let mut done = None;
    let on_caller_done = pool.in_place_scope(|scope| {
        let done = &mut done;
        scope.spawn(move |_| *done = Some(background()));
        on_caller()
    });
    // `in_place_scope` returns only after its spawned job ran (or resumes
    // its panic).
    (done.expect("the scope waits for its job"), on_caller_done)
}

/// Runs `on_caller` on this thread while `on_helper(1..=helpers)` run on
/// this thread's helpers, and returns once all have returned. A panic in
/// any of them is resumed here.
pub(crate) fn join_with<R>(
    helpers: usize,
    on_caller: impl FnOnce() -> R,
    on_helper: impl Fn(usize) + Sync,
) -> R {
    if helpers == 0 {
        return on_caller();
    }
    match pool(helpers) {
        Some(pool) => pool.in_place_scope(|scope| {
            let on_helper = &on_helper;
            for i in 1..=helpers {
                scope.spawn(move |_| on_helper(i));
            }
            on_caller()
        }),
        None => {
            let done = on_caller();
            (1..=helpers).for_each(on_helper);
            done
        }
    }
}

/// `parts.map(f)`, the first part on this thread and each other on a
/// helper; results in the order of `parts`.
pub(crate) fn map<T: Send, R: Send>(parts: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if parts.len() <= 1 {
        return parts.into_iter().map(f).collect();
    }
    let helpers = parts.len() - 1;
    let inputs: Vec<Mutex<Option<T>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    let outputs: Vec<Mutex<Option<R>>> = inputs.iter().map(|_| Mutex::new(None)).collect();
    let run = |i: usize| {
        if let Some(part) = inputs[i].lock().take() {
            *outputs[i].lock() = Some(f(part));
        }
    };
    join_with(helpers, || run(0), run);
    // `join_with` returns only after every index ran once.
    outputs.into_iter().filter_map(Mutex::into_inner).collect()
}

/// This thread's pool with at least `helpers` threads.
fn pool(helpers: usize) -> Option<Arc<rayon::ThreadPool>> {
    own_pool(&HELPERS, helpers, "h")
}

/// The pool in `key` for this thread, grown to at least `helpers` threads
/// (named after this thread, with `tag`).
fn own_pool(
    key: &'static std::thread::LocalKey<RefCell<Option<Arc<rayon::ThreadPool>>>>,
    helpers: usize,
    tag: &'static str,
) -> Option<Arc<rayon::ThreadPool>> {
    key.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|pool| pool.current_num_threads() < helpers) {
            let base = std::thread::current().name().unwrap_or("wake").to_owned();
            let built = rayon::ThreadPoolBuilder::new()
                .num_threads(helpers)
                .thread_name(move |i| format!("{base}-{tag}{}", i + 1))
                .build();
            match built {
                Ok(pool) => *cell = Some(Arc::new(pool)),
                Err(error) => {
                    tracing::warn!(%error, helpers, "no helper threads: running on one thread");
                    return None;
                }
            }
        }
        cell.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn map_keeps_the_order_of_its_parts() {
        let parts: Vec<Vec<u64>> = (0..5).map(|p| (p * 10..p * 10 + 10).collect()).collect();
        let sums = map(parts.clone(), |part| part.iter().sum::<u64>());
        let expected: Vec<u64> = parts.iter().map(|p| p.iter().sum()).collect();
        assert_eq!(sums, expected);
        assert_eq!(map(Vec::<u8>::new(), |x| x), Vec::<u8>::new());
        assert_eq!(map(vec![7], |x| x + 1), vec![8]);
    }

    #[test]
    fn helpers_persist_and_every_index_runs_once() {
        let caller = std::thread::current().id();
        let helpers = std::sync::Mutex::new(std::collections::HashSet::new());
        for round in 0..20 {
            let seen: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
            let on = join_with(
                3,
                || {
                    seen[0].fetch_add(1, Ordering::Relaxed);
                    std::thread::current().id()
                },
                |i| {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                    helpers.lock().unwrap().insert(std::thread::current().id());
                },
            );
            assert_eq!(on, caller, "the first part runs on the caller");
            assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1), "round {round}");
        }
        // Threads spawned per call would be up to 60 here; a pool is 3.
        let helpers = helpers.into_inner().unwrap();
        assert!(!helpers.is_empty() && helpers.len() <= 3, "{} helper threads", helpers.len());
        assert!(!helpers.contains(&caller));
    }

    #[test]
    fn beside_runs_both_and_the_caller_keeps_its_helpers() {
        let caller = std::thread::current().id();
        for _ in 0..10 {
            // The background part waits until the caller's own split has
            // run on its helpers: were they one pool, this would not end.
            let (started, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let (background, sums) = beside(
                || {
                    while finished.load(Ordering::Acquire) == 0 {
                        std::thread::yield_now();
                    }
                    std::thread::current().id()
                },
                || {
                    let sums = map(vec![vec![1u64, 2], vec![3, 4]], |part| {
                        started.fetch_add(1, Ordering::Relaxed);
                        part.iter().sum::<u64>()
                    });
                    finished.store(1, Ordering::Release);
                    sums
                },
            );
            assert_ne!(background, caller, "the background part has a thread of its own");
            assert_eq!(sums, vec![3, 7]);
            assert_eq!(started.load(Ordering::Relaxed), 2);
        }
        let caught = std::panic::catch_unwind(|| beside(|| panic!("background failed"), || 1));
        assert!(caught.is_err());
        assert_eq!(beside(|| 2, || 3), (2, 3));
    }

    #[test]
    fn a_helper_panic_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            join_with(1, || (), |_| panic!("helper failed"));
        });
        assert!(caught.is_err());
        // The pool still works afterwards.
        assert_eq!(map(vec![1, 2], |x| x * 2), vec![2, 4]);
    }
}
