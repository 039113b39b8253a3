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

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle helper watches for the next job before it parks.
const SPIN: Duration = Duration::from_millis(1);

/// Threads a job may use, the caller included (0: every core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads, the calling one included, a split kernel may use (0: one per
/// core). `1` runs every kernel on the calling thread.
pub fn set_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// The number of threads a split kernel may use, the calling one included.
pub fn threads() -> usize {
    // `available_parallelism` reads the affinity mask and cgroup quotas each call (tens
    // of microseconds), so it is asked once.
    static CORES: OnceLock<usize> = OnceLock::new();
    match THREADS.load(Ordering::Relaxed) {
        0 => *CORES.get_or_init(|| thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

thread_local! {
    /// Whether this thread is running a part of a job (nested kernels then run whole).
    static IN_PART: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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

/// Runs `f(band, rows)` for `parts` bands of a row-major matrix of `rows` rows stored in
/// `data`, as the parts of one [`for_parts`] job: part `i` gets the rows
/// [`part_range`]`(rows, parts, i)` and the slice of `data` that holds them. Kernels that
/// split the same rows the same way (a batch gathered, multiplied, activated) leave each
/// band in the cache of the thread that runs it next.
pub fn for_row_bands<T: Send>(
    data: &mut [T],
    rows: usize,
    parts: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
) {
    if rows == 0 {
        return;
    }
    let row_len = data.len() / rows;
    let shared = SharedMut::new(data);
    for_parts(parts, &|i| {
        let band = part_range(rows, parts, i);
        // SAFETY: the parts' bands of rows are disjoint.
        let slice = unsafe { shared.range(band.start * row_len..band.end * row_len) };
        f(band, slice)
    });
}

/// Runs `f(i, chunk)` for every `chunk`-long piece of `data` (the last may be shorter),
/// as the parts of one [`for_parts`] job.
pub fn for_chunks<T: Send>(data: &mut [T], chunk: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let (len, chunk) = (data.len(), chunk.max(1));
    let shared = SharedMut::new(data);
    for_parts(len.div_ceil(chunk), &|i| {
        // SAFETY: the chunks are disjoint.
        f(i, unsafe { shared.chunk(i, chunk) })
    });
}

/// A slice that parts of one [`for_parts`] job write disjoint pieces of.
pub struct SharedMut<'a, T> {
    data: &'a [UnsafeCell<T>],
}

// SAFETY: parts only touch disjoint ranges (the contract of `range`).
unsafe impl<T: Send> Sync for SharedMut<'_, T> {}

impl<'a, T> SharedMut<'a, T> {
    /// Wraps `data` for sharing between the parts of one job.
    pub fn new(data: &'a mut [T]) -> Self {
        let len = data.len();
        // SAFETY: `UnsafeCell<T>` has the layout of `T`, and the exclusive borrow is
        // held for `'a`.
        let data = unsafe { std::slice::from_raw_parts(data.as_mut_ptr().cast(), len) };
        SharedMut { data }
    }

    /// The elements in `range`, mutably.
    ///
    /// # Safety
    /// No two live results may overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, range: std::ops::Range<usize>) -> &mut [T] {
        let cells = &self.data[range];
        // SAFETY: the caller guarantees exclusive access to these elements.
        unsafe { std::slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len()) }
    }

    /// Piece `i` of the slice cut into pieces of `len` (the last may be shorter).
    ///
    /// # Safety
    /// No two live results may overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn chunk(&self, i: usize, len: usize) -> &mut [T] {
        let start = (i * len).min(self.data.len());
        // SAFETY: forwarded to the caller.
        unsafe { self.range(start..(start + len).min(self.data.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once() {
        set_threads(2);
        for parts in [1, 2, 3, 7, 64] {
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for_parts(parts, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
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
        set_threads(2);
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
        set_threads(2);
        let total = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        for_parts(3, &|_| {
                            assert!(in_part());
                            for_parts(2, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 3 * 2);
        assert!(!in_part());
    }
}
