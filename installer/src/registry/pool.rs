//! A bounded pool of worker threads, one response (or a few pipelined ones) per job.
//!
//! A job is a connection whose request head has fully arrived: the worker answers it and
//! hands the connection back to the server's waiting room. The pool caps the threads (64
//! by default); further jobs queue. The queue needs no bound of its own: a connection is
//! in it at most once, and the server caps connections. Submitting never blocks, so the
//! waiting room's thread never waits for a worker. Workers are started on demand and
//! retire after a while without work, so an idle registry holds few threads. A panic in
//! a job is caught and logged; the worker carries on.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub type Job = Box<dyn FnOnce() + Send + 'static>;

const WORKER_STACK: usize = 512 << 10;
const RETIRE_AFTER: Duration = Duration::from_secs(30);

struct State {
    queue: VecDeque<Job>,
    idle: usize,
    workers: usize,
    closed: bool,
    handles: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    max_workers: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    pub fn new(max_workers: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    workers: 0,
                    closed: false,
                    handles: Vec::new(),
                }),
                work: Condvar::new(),
                max_workers: max_workers.max(1),
            }),
        }
    }

    /// Queues a job, without waiting. Gives the job back once the pool is shut down.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let mut st = self.shared.lock();
        if st.closed {
            return Err(job);
        }
        st.queue.push_back(job);
        if st.queue.len() > st.idle && st.workers < self.shared.max_workers {
            let shared = self.shared.clone();
            let n = st.workers;
            match std::thread::Builder::new()
                .name(format!("registry-{n}"))
                .stack_size(WORKER_STACK)
                .spawn(move || worker(shared))
            {
                Ok(h) => {
                    st.workers += 1;
                    st.handles.retain(|h| !h.is_finished());
                    st.handles.push(h);
                }
                Err(e) => tracing::error!("cannot start a registry worker thread: {e}"),
            }
        }
        self.shared.work.notify_one();
        Ok(())
    }

    /// Drops queued jobs, lets running ones finish, and joins every worker.
    pub fn shutdown(&self) {
        let handles = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.queue.clear();
            std::mem::take(&mut st.handles)
        };
        self.shared.work.notify_all();
        for h in handles {
            let _ = h.join();
        }
    }
}

fn worker(shared: Arc<Shared>) {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if st.closed {
                    st.workers -= 1;
                    return;
                }
                if let Some(job) = st.queue.pop_front() {
                    break job;
                }
                st.idle += 1;
                let (guard, timeout) = shared
                    .work
                    .wait_timeout(st, RETIRE_AFTER)
                    .unwrap_or_else(PoisonError::into_inner);
                st = guard;
                st.idle -= 1;
                if timeout.timed_out() && st.queue.is_empty() {
                    st.workers -= 1;
                    return;
                }
            }
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic)".into());
            tracing::error!("registry connection handler panicked: {msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_job_with_bounded_workers_and_survives_panics() {
        let pool = Pool::new(4);
        let done = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        for i in 0..40 {
            let (done, running, peak) = (done.clone(), running.clone(), peak.clone());
            pool.submit(Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
                if i % 10 == 0 {
                    panic!("job {i} panics on purpose");
                }
            }))
            .unwrap_or_else(|_| panic!("pool closed"));
        }
        while done.load(Ordering::SeqCst) < 40 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(peak.load(Ordering::SeqCst) <= 4);
        pool.shutdown();
        assert!(pool.submit(Box::new(|| {})).is_err());
    }
}
