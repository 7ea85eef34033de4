//! A few helper threads that wait spinning between jobs, for products too short for the rayon
//! pool: a batch-1 step's matrix-vector products take 5-20 us, and handing half of one to a rayon
//! worker and waiting for it (a futex sleep and wake-up at each end) cost as much again (measured
//! on this project's 2-core machine: a `[768 x 256]` product took 16 us on one thread, 32 us
//! split through the pool from outside it, 14 us from inside). The helpers here poll for work
//! for [`SPIN`] after their last job before they park, as OpenMP runtimes do (Intel's waits
//! 200 ms), so a stream of tokens finds them awake and a hand-off costs a cache-line transfer.
//!
//! The team has one helper fewer than the rayon pool has threads (at most [`MAX_HELPERS`]).
//! One caller uses it at a time; a call that finds it busy (another thread, or a helper calling
//! in) runs its parts on the calling thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper polls for the next job before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// Most helper threads (polling threads beyond a few cost more than short products gain).
const MAX_HELPERS: usize = 3;

/// A job: `run(p)` for the parts `p` a helper takes.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job (the helpers wait for it to change).
    epoch: AtomicUsize,
    /// The current job: points at a [`Job`] on the caller's stack, valid until `done` counts
    /// every helper.
    job: AtomicPtr<()>,
    /// Helpers finished with the current job.
    done: AtomicUsize,
    /// Whether a helper's part panicked.
    panicked: AtomicBool,
}

struct Helper {
    thread: Thread,
    parked: AtomicBool,
}

struct Team {
    shared: &'static Shared,
    helpers: Vec<&'static Helper>,
    /// Held by the caller of the running job.
    busy: Mutex<()>,
}

fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            epoch: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        }));
        let count = rayon::current_num_threads().min(MAX_HELPERS + 1) - 1;
        // Part p runs on the p-th helper that started (a helper that fails to start takes no
        // part number, so the parts stay 0 ..= helpers).
        let mut helpers: Vec<&'static Helper> = Vec::with_capacity(count);
        for _ in 0..count {
            let part = helpers.len() + 1;
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new()
                .name(format!("sequent-team-{part}"))
                .spawn(move || {
                    let me: &'static Helper = Box::leak(Box::new(Helper {
                        thread: std::thread::current(),
                        parked: AtomicBool::new(false),
                    }));
                    tx.send(me).expect("the team waits for its helpers");
                    serve(shared, me, part);
                });
            if let Some(me) = started.ok().and_then(|_| rx.recv().ok()) {
                helpers.push(me);
            }
        }
        Team {
            shared,
            helpers,
            busy: Mutex::new(()),
        }
    })
}

/// A helper's loop: wait for the next epoch (polling, then parked), run part `part` of the job.
fn serve(shared: &Shared, me: &Helper, part: usize) -> ! {
    let mut seen = 0;
    loop {
        let mut since = Instant::now();
        let mut polls = 0u32;
        let epoch = loop {
            let epoch = shared.epoch.load(Ordering::Acquire);
            if epoch != seen {
                break epoch;
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) && since.elapsed() > SPIN {
                me.parked.store(true, Ordering::SeqCst);
                if shared.epoch.load(Ordering::SeqCst) == seen {
                    std::thread::park();
                }
                me.parked.store(false, Ordering::SeqCst);
                since = Instant::now();
            }
            std::hint::spin_loop();
        };
        seen = epoch;
        let job = shared.job.load(Ordering::Acquire) as *const Job<'_>;
        // SAFETY: the caller stored a pointer to its `Job` before bumping the epoch and does not
        // return (so the job outlives this use) until every helper has counted itself done.
        let job = unsafe { *job };
        if catch_unwind(AssertUnwindSafe(|| job(part))).is_err() {
            shared.panicked.store(true, Ordering::Release);
        }
        shared.done.fetch_add(1, Ordering::AcqRel);
    }
}

/// Threads a job can run on: the caller and the helpers.
pub fn size() -> usize {
    team().helpers.len() + 1
}

/// Runs `work` on every part: the first on the calling thread, the others on the team's helpers
/// (part `p` on helper `p - 1`, the same thread at every call), or all on the calling thread when
/// there are more parts than threads or the team is busy.
pub fn in_team<P: Send>(parts: Vec<P>, work: impl Fn(P) + Sync) {
    let team = team();
    let guard = match team.busy.try_lock() {
        Ok(guard) if parts.len() > 1 && parts.len() <= team.helpers.len() + 1 => guard,
        _ => {
            parts.into_iter().for_each(work);
            return;
        }
    };
    let helpers = parts.len() - 1;
    let slots: Vec<Mutex<Option<P>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    // Helpers beyond this job's parts find no slot.
    let run = |p: usize| {
        let part = slots
            .get(p)
            .and_then(|slot| slot.lock().expect("no part panics holding its slot").take());
        if let Some(part) = part {
            work(part);
        }
    };
    let job: Job<'_> = &run;
    let shared = team.shared;
    shared.done.store(0, Ordering::Relaxed);
    shared
        .job
        .store(&job as *const Job<'_> as *mut (), Ordering::Release);
    shared.epoch.fetch_add(1, Ordering::SeqCst);
    for helper in &team.helpers {
        if helper.parked.load(Ordering::SeqCst) {
            helper.thread.unpark();
        }
    }
    let mine = catch_unwind(AssertUnwindSafe(|| run(0)));
    while shared.done.load(Ordering::Acquire) < team.helpers.len() {
        std::hint::spin_loop();
    }
    let helper_panicked = shared.panicked.swap(false, Ordering::AcqRel);
    drop(guard);
    if let Err(payload) = mine {
        std::panic::resume_unwind(payload);
    }
    assert!(
        !helper_panicked,
        "a part of a parallel product panicked ({helpers} helpers)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once() {
        for parts in 1..6 {
            let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                in_team((0..parts).collect(), |p| {
                    counts[p].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 50));
        }
    }

    #[test]
    fn calls_from_several_threads_at_once_all_complete() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        in_team(vec![1, 2], |v| {
                            total.fetch_add(v, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 3);
    }
}
