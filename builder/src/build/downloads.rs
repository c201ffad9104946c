//! Registry layers that download while the bundle is being written.
//!
//! Why: pulling every image before the first byte is written left a core idle in each
//! phase, pulling one image at a time ("Where ferry build's time goes" in
//! docs/benchmarks.md). So plan only resolves each registry image to its manifests and
//! configs ([`crate::pull::resolve`], several images at once): that names every blob,
//! which is all the lock, `--locked` and the bundle's layout need. The layers are then
//! fetched here by `parallel_downloads` workers in the order the writer takes them, and
//! the writer waits for each ([`Downloads::wait`]) just before copying it from the cache.
//!
//! The bundle does not depend on which download finishes first: what is written, and in
//! which order, is the writer's alone. A failed download stops the workers from starting
//! others; the writer reports it when it reaches that layer, with the Kubefile line of the
//! image it belongs to, and the build fails as any write does (no output).

use crate::pull::{ContentCache, PendingPull, PullStats};
use anyhow::{anyhow, Context, Result};
use ferry_bundle::Sha256Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A registry image whose layers are still to come, with the Kubefile line that names it.
pub(crate) struct Pending {
    pub pull: PendingPull,
    pub cache: ContentCache,
    /// Where the image was asked for (`Kubefile:3`), for errors.
    pub at: String,
}

/// Per image, its download jobs not yet done.
struct JobsLeft(Vec<AtomicUsize>);

impl JobsLeft {
    /// `images` images; `jobs` names the image of each job.
    fn new(images: usize, jobs: impl Iterator<Item = usize>) -> Self {
        let left: Vec<AtomicUsize> = (0..images).map(|_| AtomicUsize::new(0)).collect();
        for p in jobs {
            left[p].fetch_add(1, Ordering::Relaxed);
        }
        JobsLeft(left)
    }

    /// One job of image `p` is done: whether it was the image's last.
    fn done(&self, p: usize) -> bool {
        self.0[p].fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// Fetches one layer into the cache; its error names the image's Kubefile line.
type Fetch<'a> = Box<dyn Fn() -> Result<PullStats> + Send + Sync + 'a>;

enum Status {
    Queued,
    Running,
    Done,
    /// Taken by the first [`Downloads::wait`] that reports it.
    Failed(Option<anyhow::Error>),
}

struct State {
    status: Vec<Status>,
    /// Jobs before this one have been started.
    next: usize,
    stopped: bool,
    first_failed: Option<usize>,
    stats: PullStats,
}

/// The layer downloads of a build, in the writer's order. Workers run [`Downloads::work`]
/// (in scoped threads); the writer calls [`Downloads::wait`] for every blob it copies.
pub(crate) struct Downloads<'a> {
    jobs: Vec<Fetch<'a>>,
    by_digest: HashMap<Sha256Digest, usize>,
    state: Mutex<State>,
    changed: Condvar,
}

impl<'a> Downloads<'a> {
    /// The layers of `pending`, queued in `order` (the digests in the order the writer
    /// copies them; each layer once). Layers the writer never asks for are not fetched.
    pub fn new(pending: &'a [Pending], order: impl IntoIterator<Item = Sha256Digest>) -> Self {
        let mut layers: HashMap<Sha256Digest, (usize, usize)> = HashMap::new();
        for (p, pend) in pending.iter().enumerate() {
            for (l, d) in pend.pull.layers().enumerate() {
                layers.entry(d.digest).or_insert((p, l));
            }
        }
        let jobs: Vec<_> = order
            .into_iter()
            .filter_map(|d| layers.remove(&d).map(|(p, l)| (d, p, l)))
            .collect();
        // An image's client keeps the connection of its last fetch open for the next:
        // closed after the image's last job here. (Resolving closed the one it used; an
        // image without jobs here, such as one whose only new layers another image
        // fetches, makes no request after it.)
        let left = Arc::new(JobsLeft::new(pending.len(), jobs.iter().map(|j| j.1)));
        let jobs = jobs.into_iter().map(|(d, p, l)| {
            let (pend, left) = (&pending[p], left.clone());
            let fetch: Fetch<'a> = Box::new(move || {
                let fetched = pend.pull.fetch(&pend.cache, l);
                if left.done(p) {
                    pend.pull.close_idle();
                }
                fetched.with_context(|| pend.at.clone())
            });
            (d, fetch)
        });
        Self::of(jobs.collect())
    }

    /// Downloads of these digests, queued in this order, each fetched by its function.
    fn of(jobs: Vec<(Sha256Digest, Fetch<'a>)>) -> Self {
        let by_digest = jobs.iter().enumerate().map(|(i, (d, _))| (*d, i)).collect();
        let state = State {
            status: jobs.iter().map(|_| Status::Queued).collect(),
            next: 0,
            stopped: false,
            first_failed: None,
            stats: PullStats::default(),
        };
        Downloads {
            jobs: jobs.into_iter().map(|(_, f)| f).collect(),
            by_digest,
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Whether there is anything to download (no workers are needed otherwise).
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker: fetches queued layers, in order, until none is left or the downloads
    /// are stopped.
    pub fn work(&self) {
        loop {
            let i = {
                let mut st = self.lock();
                if st.stopped || st.next >= self.jobs.len() {
                    return;
                }
                let i = st.next;
                st.next += 1;
                st.status[i] = Status::Running;
                i
            };
            // A panicking fetch must still end its job, or the writer would wait forever.
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&self.jobs[i]));
            let mut st = self.lock();
            match res {
                Ok(Ok(stats)) => {
                    st.stats.add(&stats);
                    st.status[i] = Status::Done;
                }
                failed => {
                    let e = match failed {
                        Ok(Err(e)) => e,
                        _ => anyhow!("the download of a layer panicked"),
                    };
                    st.status[i] = Status::Failed(Some(e));
                    st.first_failed.get_or_insert(i);
                    st.stopped = true;
                }
            }
            self.changed.notify_all();
        }
    }

    /// Stops the workers from starting more downloads (those running finish). For a
    /// writer that fails: its build is over.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Returns once the blob `digest` is in the cache, or with its download's error (or,
    /// if it was never started because another failed first, that one's). Blobs that
    /// were not pending return at once.
    pub fn wait(&self, digest: &Sha256Digest) -> Result<()> {
        let Some(&i) = self.by_digest.get(digest) else {
            return Ok(());
        };
        let mut st = self.lock();
        loop {
            let never = st.stopped && matches!(st.status[i], Status::Queued);
            let failed = match (never, st.first_failed) {
                (true, Some(f)) => f,
                (true, None) => return Err(anyhow!("layer {digest}: its download was stopped")),
                (false, _) => i,
            };
            match &mut st.status[failed] {
                Status::Done if !never => return Ok(()),
                Status::Failed(e) => {
                    return Err(e.take().unwrap_or_else(|| {
                        anyhow!("layer {digest}: not downloaded (the error is reported above)")
                    }))
                }
                _ => st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    /// What the downloads transferred so far.
    pub fn stats(&self) -> PullStats {
        self.lock().stats
    }
}

/// Sets [`Downloads::stop`] when dropped: a writer that returns early, with an error,
/// must not leave the workers fetching layers nobody will read.
pub(crate) struct StopOnDrop<'d, 'a>(pub &'d Downloads<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// `f` applied to every item, `workers` at a time, the results in the items' order.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    fn digest(i: u8) -> Sha256Digest {
        Sha256Digest::of(&[i])
    }

    fn one_blob() -> PullStats {
        PullStats {
            blobs_fetched: 1,
            bytes_fetched: 10,
            ..Default::default()
        }
    }

    /// Runs `workers` workers while `writer` waits, as `build` does.
    fn with_workers(dl: &Downloads, workers: usize, writer: impl FnOnce()) {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| dl.work());
            }
            let _stop = StopOnDrop(dl);
            writer();
        });
    }

    /// Downloads of `n` layers (digests `digest(0..n)`); layer `i` runs `fetch(i)` after
    /// marking itself started.
    fn downloads<'a>(
        n: u8,
        started: &'a [AtomicBool],
        fetch: impl Fn(u8) -> Result<PullStats> + Copy + Send + Sync + 'a,
    ) -> Downloads<'a> {
        let jobs = (0..n)
            .map(|i| {
                let f: Fetch = Box::new(move || {
                    started[i as usize].store(true, Ordering::SeqCst);
                    fetch(i)
                });
                (digest(i), f)
            })
            .collect();
        Downloads::of(jobs)
    }

    fn flags(n: usize) -> Vec<AtomicBool> {
        (0..n).map(|_| AtomicBool::new(false)).collect()
    }

    #[test]
    fn wait_returns_once_that_layer_is_done_whichever_finishes_first() {
        let (started, done) = (flags(4), flags(4));
        let done_ref = &done;
        let dl = downloads(4, &started, move |i| {
            // The first in the writer's order finishes last.
            std::thread::sleep(Duration::from_millis(40 - 10 * i as u64));
            done_ref[i as usize].store(true, Ordering::SeqCst);
            Ok(one_blob())
        });
        with_workers(&dl, 4, || {
            for i in 0..4u8 {
                dl.wait(&digest(i)).unwrap();
                assert!(done[i as usize].load(Ordering::SeqCst), "layer {i}");
            }
            // Not a pending layer: nothing to wait for.
            dl.wait(&digest(9)).unwrap();
        });
        assert_eq!(dl.stats().blobs_fetched, 4);
        assert_eq!(dl.stats().bytes_fetched, 40);
    }

    #[test]
    fn a_failure_is_reported_where_the_writer_meets_it_and_stops_the_rest() {
        let started = flags(3);
        let dl = downloads(3, &started, |i| match i {
            1 => Err(anyhow!("registry says no")).context("Kubefile:2"),
            _ => Ok(one_blob()),
        });
        with_workers(&dl, 1, || {
            dl.wait(&digest(0)).unwrap();
            // The writer reaches a layer never started: it gets the failure that stopped it.
            let e = format!("{:#}", dl.wait(&digest(2)).unwrap_err());
            assert!(
                e.contains("Kubefile:2") && e.contains("registry says no"),
                "{e}"
            );
            let e = dl.wait(&digest(1)).unwrap_err().to_string();
            assert!(e.contains("not downloaded"), "{e}");
        });
        assert!(!started[2].load(Ordering::SeqCst));
    }

    #[test]
    fn a_stopped_download_is_an_error_not_a_hang() {
        let f: Fetch = Box::new(|| Ok(one_blob()));
        let dl = Downloads::of(vec![(digest(0), f)]);
        dl.stop();
        with_workers(&dl, 2, || {
            let e = dl.wait(&digest(0)).unwrap_err().to_string();
            assert!(e.contains("stopped"), "{e}");
        });
    }

    #[test]
    fn a_panicking_download_fails_its_layer() {
        let f: Fetch = Box::new(|| panic!("boom"));
        let dl = Downloads::of(vec![(digest(0), f)]);
        with_workers(&dl, 1, || {
            let e = dl.wait(&digest(0)).unwrap_err().to_string();
            assert!(e.contains("panicked"), "{e}");
        });
    }

    #[test]
    fn an_image_is_done_after_its_last_job() {
        let left = JobsLeft::new(3, [0, 2, 0].into_iter());
        assert!(!left.done(0));
        assert!(left.done(2));
        assert!(left.done(0));
    }

    #[test]
    fn parallel_map_keeps_the_items_order() {
        let items: Vec<u64> = (0..20).collect();
        let out = parallel_map(&items, 4, |i| {
            std::thread::sleep(Duration::from_millis(20 - i));
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(parallel_map(&[] as &[u8], 4, |_| ()).is_empty());
    }
}
