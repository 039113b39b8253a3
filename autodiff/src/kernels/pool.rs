//! A small pool of spinning helper threads for splitting one kernel call into parts.
//!
//! Training steps of small networks are made of many short kernels (tens of
//! microseconds each). Handing half of one to a thread that sleeps on a futex costs a
//! wake-up of about the kernel's own length on a virtual machine, so the usual pools
//! (rayon's workers yield, then sleep) only pay off on large products. Here a job is
//! published in one atomic word that idle helpers watch for a short while (about a
//! millisecond, the way OpenMP runtimes keep their workers active between parallel
//! regions) before they park. Parts are claimed one at a time by whoever is free, the
//! caller included (the caller from the front, helpers from the back, so with two
//! threads each runs the same half of every job): a helper that is parked, or busy
//! elsewhere, never delays a job, it just takes no part of it.
//!
//! Which part runs on which thread never changes what a part computes, so results do
//! not depend on scheduling.

use smallvec::SmallVec;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle helper watches for the next job before it parks.
const SPIN: Duration = Duration::from_millis(1);

thread_local! {
    /// Threads a job started on this thread may use, the caller included (0: every
    /// core). Thread-local so that a scope entered by one caller (a test comparing
    /// thread counts, say) can never be changed under it by another.
    static THREADS: Cell<usize> = const { Cell::new(0) };
}

/// The number of cores, asked once: `available_parallelism` reads the affinity mask and
/// cgroup quotas on each call (tens of microseconds).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `work` with the kernels it calls split over at most `threads` threads, the
/// calling one included (`0`: one per core; `1`: every kernel on the calling thread),
/// and returns its result. The setting belongs to the calling thread and ends with
/// `work` (also when it panics): other threads, and code after the call, keep their
/// own. Results depend on the count only where a sum is split (see the README), never
/// on which threads run the parts.
///
/// ```
/// use autodiff::{threads, with_threads};
/// let n = with_threads(1, || threads());
/// assert_eq!(n, 1);
/// ```
pub fn with_threads<R>(threads: usize, work: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREADS.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(THREADS.with(|t| t.replace(threads)));
    work()
}

/// The number of threads a kernel called here may split its work over, the calling
/// one included: the innermost [`with_threads`] scope's count, else one per core.
pub fn threads() -> usize {
    match THREADS.with(Cell::get) {
        0 => cores(),
        n => n,
    }
}

thread_local! {
    /// Whether this thread is running a part of a job (nested kernels then run whole).
    static IN_PART: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is inside a part of a [`for_parts`] job. Kernels called
/// from a part run on that thread, unsplit: the job already uses every thread, and an
/// unsplit kernel computes the same values whatever the thread count.
pub fn in_part() -> bool {
    IN_PART.with(|p| p.get())
}

/// One published job: `f(i)` for every part `i`, and how many parts are unfinished.
struct Job<'f> {
    f: &'f (dyn Fn(usize) + Sync),
    unfinished: AtomicUsize,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

/// A helper's parking state, seen by callers that may need to wake it.
struct Helper {
    thread: Thread,
    sleeping: Arc<AtomicBool>,
}

struct Pool {
    /// `generation << 32 | end << 16 | next`: the parts not yet claimed are
    /// `next..end`. Publishing a job and claiming a part are each one atomic operation
    /// on this word.
    word: AtomicU64,
    /// The current job; read only by a thread that has claimed one of its parts.
    job: AtomicPtr<Job<'static>>,
    /// Held by the one caller whose job is published.
    busy: AtomicBool,
    helpers: Mutex<Vec<Helper>>,
}

const PARTS_MAX: usize = 0xFFFF;

fn fields(word: u64) -> (u64, usize, usize) {
    (
        word >> 32,
        ((word >> 16) & 0xFFFF) as usize,
        (word & 0xFFFF) as usize,
    )
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        word: AtomicU64::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        busy: AtomicBool::new(false),
        helpers: Mutex::new(Vec::new()),
    })
}

impl Pool {
    /// Claims and runs one part of the published job, if one is left: the first one
    /// left for the caller (`front`), the last one for a helper. Returns whether it ran
    /// one. With two threads the caller so runs part 0 and the helper part 1 every
    /// time, and a kernel whose parts follow an earlier kernel's (a batch gathered by
    /// rows, then multiplied by rows) finds its data in its own core's cache.
    fn run_one(&self, front: bool) -> bool {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let (_, end, next) = fields(word);
            if next >= end {
                return false;
            }
            let (part, claimed) = if front {
                (next, word + 1)
            } else {
                (end - 1, word - (1 << 16))
            };
            match self.word.compare_exchange_weak(
                word,
                claimed,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: a claimed part keeps its job alive: the caller does not
                    // return before `unfinished` reaches zero, which needs this part.
                    // The job was stored before the word that published it.
                    let job = unsafe { &*self.job.load(Ordering::Acquire) };
                    let f = job.f;
                    let outer = IN_PART.with(|p| p.replace(true));
                    let result = panic::catch_unwind(AssertUnwindSafe(|| f(part)));
                    IN_PART.with(|p| p.set(outer));
                    if let Err(payload) = result {
                        *job.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
                    }
                    job.unfinished.fetch_sub(1, Ordering::Release);
                    return true;
                }
                Err(now) => word = now,
            }
        }
    }

    /// At least `count` helpers (fewer only if threads cannot be spawned). Locked
    /// only by the caller holding `busy`, so never contended.
    fn ensure_helpers(&self, count: usize) -> MutexGuard<'_, Vec<Helper>> {
        let mut helpers = self.helpers.lock().unwrap_or_else(|e| e.into_inner());
        while helpers.len() < count {
            let sleeping = Arc::new(AtomicBool::new(false));
            let flag = sleeping.clone();
            let spawned = thread::Builder::new()
                .name(format!("autodiff-helper-{}", helpers.len() + 1))
                .spawn(move || helper_loop(&flag));
            match spawned {
                Ok(handle) => helpers.push(Helper {
                    thread: handle.thread().clone(),
                    sleeping,
                }),
                // No thread (resource limits): run with the helpers there are.
                Err(_) => break,
            }
        }
        helpers
    }
}

fn helper_loop(sleeping: &AtomicBool) -> ! {
    let pool = pool();
    loop {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        loop {
            if pool.run_one(false) {
                idle_since = Instant::now();
                continue;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && idle_since.elapsed() > SPIN {
                break;
            }
        }
        // Announce the nap, then look once more: a caller publishes its job before
        // reading `sleeping` (both sequentially consistent), so either it sees the
        // flag and unparks us, or we see its job here.
        sleeping.store(true, Ordering::SeqCst);
        let (_, end, next) = fields(pool.word.load(Ordering::SeqCst));
        if next >= end {
            thread::park();
        }
        sleeping.store(false, Ordering::SeqCst);
    }
}

/// Runs `f(i)` for every `i` in `0..parts`, on the calling thread and up to
/// [`threads`]` - 1` helpers, and returns when all parts are done. A panic in any part
/// is re-raised here after the others finish. When the pool is in use by another
/// thread (or `threads()` is 1) every part runs on the calling thread, in order.
pub fn for_parts(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    let wanted = threads().min(parts);
    if wanted <= 1 || parts > PARTS_MAX || in_part() {
        return run_here(parts, f);
    }
    let pool = pool();
    if pool
        .busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return run_here(parts, f);
    }
    let helpers = pool.ensure_helpers(wanted - 1);
    let job = Job {
        f,
        unfinished: AtomicUsize::new(parts),
        panic: Mutex::new(None),
    };
    // SAFETY (lifetime): the pointer is read only by threads that claimed a part, and
    // the caller waits for every part before `job` goes out of scope.
    pool.job.store(
        std::ptr::from_ref(&job).cast_mut().cast(),
        Ordering::Release,
    );
    let generation = fields(pool.word.load(Ordering::Relaxed)).0 + 1;
    pool.word.store(
        (generation << 32) | ((parts as u64) << 16),
        Ordering::SeqCst,
    );
    for helper in helpers.iter().take(wanted - 1) {
        if helper.sleeping.load(Ordering::SeqCst) {
            helper.thread.unpark();
        }
    }
    drop(helpers);

    // Parts catch their own panics, so this loop always ends with every part claimed.
    while pool.run_one(true) {}
    let mut spins = 0u32;
    while job.unfinished.load(Ordering::Acquire) != 0 {
        spins = spins.wrapping_add(1);
        if spins < 1 << 14 {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
    pool.busy.store(false, Ordering::Release);
    let payload = job.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(payload) = payload {
        panic::resume_unwind(payload);
    }
}

/// Runs every part on the calling thread, in order, marked as inside a part like the
/// parts of a shared job (so what they call runs unsplit in both cases).
fn run_here(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_PART.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(IN_PART.with(|p| p.replace(true)));
    (0..parts).for_each(f);
}

/// Splits `len` items into `parts` contiguous ranges of nearly equal size and returns
/// the range of part `i`.
pub fn part_range(len: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let base = len / parts;
    let extra = len % parts;
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}

/// Runs `f(i, item)` for every item, item `i` as part `i` of one [`for_parts`] job, which
/// owns it: the parts of a job write through items cut from one exclusive borrow
/// (`split_at_mut`, `chunks_mut`), so no two ever hold overlapping memory.
pub(crate) fn for_each_owned<W: Send>(items: SmallVec<[W; 8]>, f: impl Fn(usize, W) + Sync) {
    // Each part takes its own slot once; the lock is never contended.
    let slots: SmallVec<[Mutex<Option<W>>; 8]> =
        items.into_iter().map(|w| Mutex::new(Some(w))).collect();
    for_parts(slots.len(), &|i| {
        let item = slots[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each part runs once");
        f(i, item)
    });
}

/// Runs `f(band, rows)` for `parts` bands of a row-major matrix of `rows` rows stored in
/// `data`, as the parts of one [`for_parts`] job: part `i` gets the rows
/// [`part_range`]`(rows, parts, i)` and the slice of `data` that holds them. Kernels that
/// split the same rows the same way (a batch gathered, multiplied, activated) leave each
/// band in the cache of the thread that runs it next.
pub(crate) fn for_row_bands<T: Send>(
    data: &mut [T],
    rows: usize,
    parts: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
) {
    if rows == 0 {
        return;
    }
    let row_len = data.len() / rows;
    let mut bands = SmallVec::new();
    let mut rest = data;
    for i in 0..parts {
        let band = part_range(rows, parts, i);
        let (slice, tail) = rest.split_at_mut(band.len() * row_len);
        bands.push((band, slice));
        rest = tail;
    }
    for_each_owned(bands, |_, (band, slice)| f(band, slice));
}

/// Runs `f(i, chunk)` for every `chunk`-long piece of `data` (the last may be shorter),
/// as the parts of one [`for_parts`] job.
pub(crate) fn for_chunks<T: Send>(
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_each_owned(data.chunks_mut(chunk.max(1)).collect(), f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once() {
        with_threads(2, every_part_runs_once_here);
    }

    fn every_part_runs_once_here() {
        assert_eq!(threads(), 2);
        for parts in [1, 2, 3, 7, 64] {
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for_parts(parts, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    /// A scope is the calling thread's own: another thread's scope, entered and left
    /// meanwhile, does not change it, and it ends with its closure.
    #[test]
    fn a_thread_count_scope_belongs_to_its_thread() {
        let outside = threads();
        with_threads(3, || {
            assert_eq!(threads(), 3);
            thread::scope(|scope| {
                scope.spawn(|| with_threads(1, || assert_eq!(threads(), 1)));
                scope.spawn(|| assert_eq!(threads(), outside));
            });
            assert_eq!(with_threads(5, threads), 5);
            assert_eq!(threads(), 3);
        });
        assert_eq!(threads(), outside);
        let caught = panic::catch_unwind(|| with_threads(7, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(threads(), outside, "a panic ends the scope too");
    }

    #[test]
    fn ranges_cover_without_overlap() {
        for (len, parts) in [(10, 3), (2, 5), (0, 2), (100, 7)] {
            let mut covered = Vec::new();
            for i in 0..parts {
                covered.extend(part_range(len, parts, i));
            }
            assert_eq!(covered, (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_part_panics_the_caller_and_frees_the_pool() {
        with_threads(2, a_panicking_part_panics_here);
    }

    fn a_panicking_part_panics_here() {
        let caught = panic::catch_unwind(|| {
            for_parts(4, &|i| {
                if i == 3 {
                    panic!("part 3");
                }
            })
        });
        assert!(caught.is_err());
        let sum = AtomicUsize::new(0);
        for_parts(4, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 6);
    }

    /// Several threads splitting jobs at once (one holds the pool, the others run their
    /// parts themselves) and jobs nested inside parts all run every part exactly once.
    #[test]
    fn concurrent_and_nested_jobs_run_every_part_once() {
        let total = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    with_threads(2, || {
                        for _ in 0..200 {
                            for_parts(3, &|_| {
                                assert!(in_part());
                                for_parts(2, &|_| {
                                    total.fetch_add(1, Ordering::Relaxed);
                                });
                            });
                        }
                    })
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 3 * 2);
        assert!(!in_part());
    }
}
