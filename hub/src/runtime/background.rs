//! Threads for background invocations (deliveries, jobs, actions), at a lower OS priority than
//! the threads that answer webhooks.
//!
//! Under a burst the hub acknowledges first: a provider waits for its 2xx (and retries when it
//! times out), while the queue is durable and drains when the burst ends. Sixteen busy
//! connector threads at the default priority would otherwise take most of two cores from the
//! two that accept, verify and store webhooks. With nice 10 (a tenth of the default CPU weight)
//! the background still runs whenever the CPU is free, and a 150 µs invocation takes a few
//! milliseconds of wall time at worst, far inside any connector's time limit.
//!
//! Threads start on demand, one per task in flight, up to the runtime's instance limit (the
//! runtime's permits already bound the tasks in flight), so no task waits for another's end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// How much nicer than the webhook threads background threads are.
const NICE: i32 = 10;

type Task = Box<dyn FnOnce() + Send>;

/// A pool of niced threads. Cheap to clone.
#[derive(Clone)]
pub struct Background {
    inner: Arc<Inner>,
}

struct Inner {
    tasks: Mutex<mpsc::Sender<Task>>,
    queue: Arc<Mutex<mpsc::Receiver<Task>>>,
    /// Tasks sent and not yet finished.
    busy: Arc<AtomicUsize>,
    threads: AtomicUsize,
    max_threads: usize,
}

impl Background {
    /// A pool that grows to at most `max_threads` threads.
    pub fn new(max_threads: usize) -> Background {
        let (tasks, queue) = mpsc::channel();
        Background {
            inner: Arc::new(Inner {
                tasks: Mutex::new(tasks),
                queue: Arc::new(Mutex::new(queue)),
                busy: Arc::new(AtomicUsize::new(0)),
                threads: AtomicUsize::new(0),
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Runs `f` on a background thread; the answer comes back through the returned receiver
    /// (closed without an answer if `f` panicked or no thread could be started).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let inner = &self.inner;
        let busy = inner.busy.fetch_add(1, Ordering::SeqCst) + 1;
        if busy > inner.threads.load(Ordering::SeqCst) {
            self.start_thread();
        }
        let done = inner.busy.clone();
        let task: Task = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            done.fetch_sub(1, Ordering::SeqCst);
            if let Ok(out) = out {
                let _ = answer.send(out);
            }
        });
        let sent = inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(task);
        if sent.is_err() {
            inner.busy.fetch_sub(1, Ordering::SeqCst);
        }
        answered
    }

    fn start_thread(&self) {
        let inner = &self.inner;
        let n = inner.threads.fetch_add(1, Ordering::SeqCst);
        if n >= inner.max_threads {
            inner.threads.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let queue = inner.queue.clone();
        let started = std::thread::Builder::new()
            .name("hub-connector".into())
            .spawn(move || {
                // On Linux the nice value belongs to the thread: this one only. Relative to
                // the hub's own, so a hub started under `nice` keeps these below it.
                let ours = rustix::process::getpriority_process(None).unwrap_or(0);
                if let Err(e) = rustix::process::setpriority_process(None, (ours + NICE).min(19)) {
                    tracing::debug!("background thread keeps the default priority: {e}");
                }
                loop {
                    let task = {
                        let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                        queue.recv()
                    };
                    match task {
                        Ok(task) => task(),
                        Err(_) => break,
                    }
                }
            });
        if started.is_err() {
            inner.threads.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_every_task_at_once_up_to_its_threads_and_survives_a_panic() {
        let pool = Background::new(4);
        // Four tasks that each wait for all four to have started: they only finish if none
        // waits for another's end.
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let answers: Vec<_> = (0..4)
            .map(|i| {
                let b = barrier.clone();
                pool.spawn(move || {
                    b.wait();
                    i * 2
                })
            })
            .collect();
        let mut got = Vec::new();
        for a in answers {
            got.push(a.await.unwrap());
        }
        assert_eq!(got, vec![0, 2, 4, 6]);
        let panicked = pool.spawn(|| -> u8 { panic!("guest host bug") });
        assert!(panicked.await.is_err(), "a panic closes the answer");
        assert_eq!(pool.spawn(|| 7).await.unwrap(), 7, "the pool still works");
        assert!(pool.inner.threads.load(Ordering::SeqCst) <= 4);
    }

    #[test]
    fn its_threads_are_niced() {
        let pool = Background::new(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let nice = rt
            .block_on(pool.spawn(|| rustix::process::getpriority_process(None)))
            .unwrap()
            .unwrap();
        let ours = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(nice, (ours + NICE).min(19));
    }
}
