//! [`Dataset`]: batches prepared ahead on background threads and delivered in order.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::shard::Shard;
use super::source::{BatchSource, InputPosition, InputStats, StagedSource};
use crate::error::{Error, Result};

/// Batches a dataset keeps ready beyond the one being consumed (more with more decoders: one
/// per decoder thread plus one).
const PREFETCH_DEPTH: usize = 2;

/// One prepared batch, numbered in stream order, with the source's position and counters
/// after it.
struct Delivery {
    seq: u64,
    batch: Result<Batch>,
    position: Option<InputPosition>,
    stats: InputStats,
}

/// What the background threads send the consumer.
enum Message {
    Ready(Delivery),
    /// The stream ends before batch `seq`.
    End(u64),
}

/// A raw item on its way to a decoder.
struct Job<R> {
    seq: u64,
    raw: R,
    position: Option<InputPosition>,
    stats: InputStats,
}

/// Batches prepared ahead on background threads, so a step never waits for data it could have
/// had; delivered in stream order whatever order the decoders finish in. At most
/// `max(PREFETCH_DEPTH, threads + 1)` batches are in flight (read but not yet consumed), so
/// memory is bounded by that depth, not by the data. Dropping the dataset stops its threads.
pub struct Dataset {
    receiver: Option<Receiver<Message>>,
    credits: Option<SyncSender<()>>,
    threads: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, Delivery>,
    next_seq: u64,
    end_at: Option<u64>,
    endless: bool,
    position: Option<InputPosition>,
    stats: InputStats,
    waited: Duration,
    part: Shard,
}

/// Adapts a one-stage source to the staged pipeline: its batches are the raw items.
struct Direct<S>(S);

impl<S: BatchSource> StagedSource for Direct<S> {
    type Raw = Batch;
    fn next_raw(&mut self) -> Option<Result<Batch>> {
        self.0.next_batch()
    }
    fn is_endless(&self) -> bool {
        self.0.is_endless()
    }
    fn position(&self) -> Option<InputPosition> {
        self.0.position()
    }
}

impl Dataset {
    /// Starts one background thread that draws batches from `source`.
    pub fn prefetch(source: impl BatchSource) -> Dataset {
        Dataset::staged(Direct(source), Ok, 0)
    }

    /// Starts a reader thread over `source` and `threads` decoder threads that turn its raw
    /// items into batches with `decode` (`threads` 0: the reader decodes them itself).
    pub fn staged<S, D>(source: S, decode: D, threads: usize) -> Dataset
    where
        S: StagedSource,
        D: Fn(S::Raw) -> Result<Batch> + Send + Sync + 'static,
    {
        let endless = source.is_endless();
        let depth = PREFETCH_DEPTH.max(threads + 1);
        let (out, receiver) = channel();
        let (credits, credit_rx) = sync_channel(depth);
        for _ in 0..depth {
            credits
                .try_send(())
                .expect("the credit channel holds `depth` credits");
        }
        let decode = Arc::new(decode);
        let mut handles = Vec::new();
        let route = if threads == 0 {
            Route::Inline(decode)
        } else {
            let (jobs, job_rx) = channel::<Job<S::Raw>>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            for worker in 0..threads {
                let (job_rx, decode, out) = (job_rx.clone(), decode.clone(), out.clone());
                handles.push(spawn(format!("grove-decode-{worker}"), move || {
                    decode_jobs(&job_rx, decode.as_ref(), &out)
                }));
            }
            Route::Workers(jobs)
        };
        handles.push(spawn("grove-input".to_string(), move || {
            read_items(source, &credit_rx, &route, &out)
        }));
        Dataset {
            receiver: Some(receiver),
            credits: Some(credits),
            threads: handles,
            pending: BTreeMap::new(),
            next_seq: 0,
            end_at: None,
            endless,
            position: None,
            stats: InputStats::default(),
            waited: Duration::ZERO,
            part: Shard::WHOLE,
        }
    }

    /// The next batch, or `None` at the end of a finite dataset. A source's error ends the
    /// stream after it is delivered.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        loop {
            if self.end_at.is_some_and(|end| self.next_seq >= end) {
                return None;
            }
            if let Some(delivery) = self.pending.remove(&self.next_seq) {
                return Some(self.deliver(delivery));
            }
            let receiver = self.receiver.as_ref()?;
            let started = Instant::now();
            let received = receiver.recv();
            self.waited += started.elapsed();
            match received {
                Ok(Message::Ready(delivery)) => {
                    self.pending.insert(delivery.seq, delivery);
                }
                Ok(Message::End(seq)) => self.end_at = Some(seq),
                Err(_) => {
                    self.end_at = Some(self.next_seq);
                    return Some(Err(Error::Data(
                        "the input threads stopped without finishing the stream".to_string(),
                    )));
                }
            }
        }
    }

    /// Declares that each batch is only pipeline `part`'s share of the global batch (its
    /// [`Shard::part_of`] the global batch size), read from `part`'s shard of the data: a
    /// worker of a multi-worker job then trains on it as it is, instead of cutting its part
    /// out of a global batch.
    pub fn holding_part(mut self, part: Shard) -> Self {
        self.part = part;
        self
    }

    /// Which part of each global batch this dataset's batches are ([`Shard::WHOLE`]: all).
    pub fn part(&self) -> Shard {
        self.part
    }

    /// True when the dataset never ends.
    pub fn is_endless(&self) -> bool {
        self.endless
    }

    /// Where the source stood after the last batch delivered (`None` before the first batch
    /// and for sources repositioned by batch count).
    pub fn position(&self) -> Option<&InputPosition> {
        self.position.as_ref()
    }

    /// The source's counters after the last batch delivered.
    pub fn stats(&self) -> InputStats {
        self.stats
    }

    /// Time [`Dataset::next_batch`] spent waiting for the background threads since the last
    /// call, which resets it.
    pub fn take_input_wait(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }

    fn deliver(&mut self, delivery: Delivery) -> Result<Batch> {
        self.next_seq += 1;
        if let Some(credits) = &self.credits {
            let _ = credits.try_send(());
        }
        if delivery.batch.is_ok() {
            self.position = delivery.position;
            self.stats = delivery.stats;
        }
        delivery.batch
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        self.receiver = None;
        self.credits = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Where the reader sends a raw item: decoded on its own thread, or to the decoders.
enum Route<R, D> {
    Inline(Arc<D>),
    Workers(Sender<Job<R>>),
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .expect("cannot spawn an input thread")
}

/// The reader thread: draws raw items while it holds credits (one per batch in flight) and
/// routes them; ends the stream at the source's end or first error.
fn read_items<S, D>(
    mut source: S,
    credits: &Receiver<()>,
    route: &Route<S::Raw, D>,
    out: &Sender<Message>,
) where
    S: StagedSource,
    D: Fn(S::Raw) -> Result<Batch>,
{
    let mut seq = 0;
    while credits.recv().is_ok() {
        let item = catch_unwind(AssertUnwindSafe(|| source.next_raw()))
            .unwrap_or_else(|panic| Some(Err(panicked("reader", panic.as_ref()))));
        let raw = match item {
            None => break,
            Some(Err(error)) => {
                let failed = Delivery {
                    seq,
                    batch: Err(error),
                    position: None,
                    stats: source.stats(),
                };
                seq += 1;
                let _ = out.send(Message::Ready(failed));
                break;
            }
            Some(Ok(raw)) => raw,
        };
        let job = Job {
            seq,
            raw,
            position: source.position(),
            stats: source.stats(),
        };
        seq += 1;
        let sent = match route {
            Route::Inline(decode) => out
                .send(Message::Ready(decoded(job, decode.as_ref())))
                .is_ok(),
            Route::Workers(jobs) => jobs.send(job).is_ok(),
        };
        if !sent {
            return;
        }
    }
    let _ = out.send(Message::End(seq));
}

/// A decoder thread: decodes jobs until the reader stops.
fn decode_jobs<R, D>(jobs: &Mutex<Receiver<Job<R>>>, decode: &D, out: &Sender<Message>)
where
    D: Fn(R) -> Result<Batch>,
{
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if out.send(Message::Ready(decoded(job, decode))).is_err() {
            return;
        }
    }
}

fn decoded<R, D: Fn(R) -> Result<Batch>>(job: Job<R>, decode: &D) -> Delivery {
    let Job {
        seq,
        raw,
        position,
        stats,
    } = job;
    let batch = catch_unwind(AssertUnwindSafe(|| decode(raw)))
        .unwrap_or_else(|panic| Err(panicked("decoder", panic.as_ref())));
    Delivery {
        seq,
        batch,
        position,
        stats,
    }
}

fn panicked(thread: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    Error::Data(format!("the input {thread} thread panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    struct Counter {
        next: u32,
        end: u32,
    }

    impl BatchSource for Counter {
        fn next_batch(&mut self) -> Option<Result<Batch>> {
            if self.next == self.end {
                return None;
            }
            let mut batch = Batch::new();
            batch.insert("x", Tensor::new(&[self.next], &Device::Cpu).unwrap());
            self.next += 1;
            Some(Ok(batch))
        }
        fn is_endless(&self) -> bool {
            false
        }
        fn position(&self) -> Option<InputPosition> {
            Some(InputPosition(serde_json::json!(self.next)))
        }
    }

    fn first_value(batch: Result<Batch>) -> u32 {
        batch.unwrap().get("x").unwrap().to_vec1::<u32>().unwrap()[0]
    }

    #[test]
    fn prefetched_batches_arrive_in_order_then_end() {
        let mut data = Dataset::prefetch(Counter { next: 0, end: 5 });
        let mut seen = Vec::new();
        while let Some(batch) = data.next_batch() {
            seen.push(first_value(batch));
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert!(data.next_batch().is_none());
    }

    #[test]
    fn the_position_is_the_sources_after_the_last_batch_delivered_not_read() {
        let mut data = Dataset::prefetch(Counter { next: 0, end: 100 });
        assert_eq!(data.position(), None);
        data.next_batch().unwrap().unwrap();
        // The reader has run ahead by now; the position stays the consumer's.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(data.position(), Some(&InputPosition(serde_json::json!(1))));
        data.next_batch().unwrap().unwrap();
        assert_eq!(data.position(), Some(&InputPosition(serde_json::json!(2))));
    }

    /// Raw items are numbers; decoding sleeps inversely to the number, so later items finish
    /// first on a pool of decoders.
    struct Numbers(u32);

    impl StagedSource for Numbers {
        type Raw = u32;
        fn next_raw(&mut self) -> Option<Result<u32>> {
            self.0 += 1;
            match self.0 {
                13 => Some(Err(Error::Data("item 13 is bad".to_string()))),
                n => Some(Ok(n)),
            }
        }
        fn is_endless(&self) -> bool {
            true
        }
    }

    fn decode_slowly(n: u32) -> Result<Batch> {
        std::thread::sleep(Duration::from_millis(u64::from(4 * (n % 4))));
        if n == 7 {
            panic!("cannot decode 7 on purpose");
        }
        let mut batch = Batch::new();
        batch.insert("x", Tensor::new(&[n], &Device::Cpu)?);
        Ok(batch)
    }

    #[test]
    fn decoders_finish_out_of_order_but_batches_arrive_in_order() {
        let mut data = Dataset::staged(Numbers(0), decode_slowly, 3);
        let seen: Vec<u32> = (0..6)
            .map(|_| first_value(data.next_batch().unwrap()))
            .collect();
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
        let panic = data.next_batch().unwrap().unwrap_err().to_string();
        assert!(
            panic.contains("decoder thread panicked: cannot decode 7"),
            "{panic}"
        );
        let rest: Vec<u32> = (0..5)
            .map(|_| first_value(data.next_batch().unwrap()))
            .collect();
        assert_eq!(rest, vec![8, 9, 10, 11, 12]);
        let error = data.next_batch().unwrap().unwrap_err().to_string();
        assert!(error.contains("item 13 is bad"), "{error}");
        assert!(data.next_batch().is_none());
    }

    /// Raw items whose decoding waits for a release the test sends.
    struct Gated;

    impl StagedSource for Gated {
        type Raw = ();
        fn next_raw(&mut self) -> Option<Result<()>> {
            Some(Ok(()))
        }
        fn is_endless(&self) -> bool {
            true
        }
    }

    #[test]
    fn waiting_for_input_is_measured_and_reset() {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let mut data = Dataset::staged(
            Gated,
            move |()| {
                gate.lock().unwrap().recv().ok();
                Ok(Batch::new())
            },
            1,
        );
        let started = Instant::now();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            release.send(()).unwrap();
        });
        let called = started.elapsed();
        data.next_batch().unwrap().unwrap();
        let call = started.elapsed() - called;
        let waited = data.take_input_wait();
        assert!(waited <= call, "{waited:?} > {call:?}");
        // The batch cannot be ready before the release, 30 ms after `started`.
        if called < Duration::from_millis(20) {
            assert!(waited >= Duration::from_millis(10), "{waited:?}");
        }
        assert_eq!(data.take_input_wait(), Duration::ZERO);
        releaser.join().unwrap();
        drop(data);
    }

    #[test]
    fn dropping_an_unfinished_dataset_stops_its_threads() {
        let mut data = Dataset::prefetch(Counter {
            next: 0,
            end: u32::MAX,
        });
        data.next_batch().unwrap().unwrap();
        drop(data);
        let mut staged = Dataset::staged(Numbers(0), decode_slowly, 2);
        staged.next_batch().unwrap().unwrap();
        drop(staged);
    }
}
