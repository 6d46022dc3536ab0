//! The single writer of pm's stdout: a dedicated OS thread fed by a queue of
//! formatted buffers.
//!
//! Why a thread: pm's runtime has one thread, and a stalled stdout (a paused
//! terminal, a full pipe to `less`) must never stop it from answering a signal.
//! Why a byte budget: a stalled stdout must slow the children down (their
//! pipes fill and they block) rather than make pm buffer without bound.
//!
//! The queue is one FIFO for everything, so bytes appear in the order their
//! sends completed, whoever sent them. A small send that finds the queue
//! empty may skip it: where [`OutputTx::write_directly_to`] allows, the
//! sender writes it itself with a write that never waits, and queues what
//! stdout did not take at once (under one lock with every other queuing, so
//! nothing passes it). Relays use [`OutputTx::send`], which
//! waits for room in the budget; the supervisor uses [`OutputTx::send_now`],
//! which never waits: its `system` lines have a small budget of their own,
//! and beyond it they are dropped (and counted) rather than queued without
//! bound.
//!
//! A stalled stdout never holds pm up at its end: [`OutputTx::end`] waits
//! while stdout takes bytes, and gives up (counting the lines it drops) once
//! it has taken none for [`STALL`], or at once when told to. After giving up
//! the thread may stay blocked in its `write` until pm exits; nothing waits
//! for it.

use std::future::Future;
use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::sink::IOV_MAX;

/// The bytes queued or being written before [`OutputTx::send`] waits: enough
/// for a dozen 64 KiB reads in flight, little next to pm's memory target.
pub const DEFAULT_BUDGET: usize = 1 << 20;

/// The bytes of `system` lines queued before more are dropped: about a
/// thousand lines, while stdout does not take any.
pub const SYSTEM_BUDGET: usize = 64 * 1024;

/// How long stdout may take nothing, while pm has output for it, before it
/// counts as stalled (a terminal paused with Ctrl-S, a reader that stopped).
pub const STALL: Duration = Duration::from_secs(1);

/// Written buffers kept for reuse, and the largest capacity kept. Reusing
/// them spares a fresh allocation (and its page faults) per chunk relayed,
/// which costs more than the framing itself; the bound keeps an idle pm small
/// after a burst of output.
const POOL_LEN: usize = 4;
const POOL_CAPACITY: usize = 256 * 1024;

/// The largest chunk a sender writes directly. A small one (a line or a
/// few, what a child writing line by line gives) costs more to hand to the
/// thread than to write; a large one (a child writing in blocks, or output
/// that piled up while pm was busy) is worth the hand-off, since the
/// thread's write then overlaps the runtime's next read.
const DIRECT_MAX: usize = 4096;

/// After this long without output the pool is emptied and the allocator's
/// free memory handed back, so an idle pm holds no output buffer. (The
/// writer wakes for it once after output, not while idle: an idle pm does
/// not wake every second.)
const IDLE: Duration = Duration::from_secs(1);

/// What senders and the writer thread share.
struct Shared {
    /// Bytes that may still be queued before `send` waits.
    budget: Semaphore,
    /// Bytes of `system` lines that may still be queued.
    system_budget: Semaphore,
    /// Emptied buffers, handed out by [`OutputTx::buffer`]. Locked once per
    /// chunk by a sender and once per batch by the writer: uncontended in
    /// practice.
    pool: Mutex<Vec<Vec<u8>>>,
    /// The queue's receiving end. The writer thread holds it while it waits
    /// for items; whoever gives up on a stalled writer (which is then inside
    /// `write`, not holding it) counts what is left in it.
    items: Mutex<Receiver<Item>>,
    /// Lines dropped: `system` lines beyond their budget, sends cut short,
    /// output discarded after giving up on stdout.
    dropped: AtomicU64,
    /// The batch being written, whose lines are dropped if the writer is
    /// given up on. Counted only then: counting every batch's lines would
    /// cost a pass over all output.
    in_flight: Mutex<Option<Arc<Vec<Item>>>>,
    /// Set once pm gives up on stdout: what is left is dropped, not written.
    discarding: AtomicBool,
    /// Whether the writer thread is inside a write, and when it last made
    /// progress (milliseconds since `epoch`).
    writing: AtomicBool,
    progress_at: AtomicU64,
    epoch: Instant,
    /// Becomes true when the writer thread has ended.
    ended: watch::Sender<bool>,
    /// Items queued and not yet written (or dropped) by the writer thread.
    pending: AtomicU64,
    /// Held while an item is queued or written directly, so that a direct
    /// write and a queued item cannot pass each other.
    order: Mutex<()>,
    /// The descriptor a sender may write to itself, without blocking, while
    /// nothing is queued (-1: never). See [`OutputTx::write_directly_to`].
    direct: std::sync::atomic::AtomicI32,
    /// Set once the writer thread failed a write: from then on the thread
    /// drops what it is given, and senders give it everything.
    failed: AtomicBool,
    /// Bytes written directly by senders, in all.
    directly: AtomicU64,
    /// Whether the writer thread will release memory once output has been
    /// idle for [`IDLE`]: set while it waits with a timeout, cleared when
    /// it released. A direct write that finds it clear wakes the thread
    /// (one [`Kind::Wake`] per idle period), since the thread saw nothing
    /// of that output.
    release_due: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progressed(&self) {
        self.progress_at.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The lines dropped, counting the batch being written once stdout
    /// has been given up on (it may never be written).
    fn dropped_in_all(&self) -> u64 {
        let in_flight = if self.discarding.load(Ordering::SeqCst) {
            let batch = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            batch.map_or(0, |batch| {
                batch.iter().map(|item| lines_in(&item.bytes)).sum()
            })
        } else {
            0
        };
        self.dropped.load(Ordering::SeqCst) + in_flight
    }

    fn drop_lines(&self, lines: u64) {
        self.dropped.fetch_add(lines, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    System,
    /// Nothing after this is written: the writer thread ends.
    End,
    /// No bytes: output was written directly, so the writer thread is to
    /// release memory once output is idle. Not counted in `pending`.
    Wake,
}

struct Item {
    bytes: Vec<u8>,
    /// Budget taken by this item (from the budget of its kind), given back
    /// once it is written.
    permits: u32,
    kind: Kind,
}

/// What a direct write did.
enum Direct {
    /// Wrote everything.
    All,
    /// Wrote this many bytes; the rest is queued.
    Part(usize),
    /// Wrote nothing; everything is queued.
    None,
}

fn lines_in(bytes: &[u8]) -> u64 {
    // Every buffer holds whole lines, each ending with a newline.
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// A handle to queue formatted output; cheap to clone. The writer thread ends
/// once every handle is dropped, or at [`OutputTx::end`].
#[derive(Clone)]
pub struct OutputTx {
    queue: Sender<Item>,
    shared: Arc<Shared>,
    /// The budget's total, the most one item may take.
    total: u32,
}

impl std::fmt::Debug for OutputTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTx")
            .field("available", &self.shared.budget.available_permits())
            .field("total", &self.total)
            .finish()
    }
}

/// Counts a send's lines as dropped if the send is cut short (cancelled, or
/// refused because the writer is gone) before its bytes are queued.
struct Unsent<'a> {
    shared: &'a Shared,
    bytes: Option<Vec<u8>>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(bytes) = &self.bytes {
            self.shared.drop_lines(lines_in(bytes));
        }
    }
}

impl OutputTx {
    /// An empty buffer to format into, reusing one already written when
    /// there is one. Any `Vec` may be sent; this one is just cheaper.
    pub fn buffer(&self) -> Vec<u8> {
        self.shared
            .pool
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    /// Queues `bytes` (whole lines), waiting while the budget is used up,
    /// that is while stdout does not keep up.
    ///
    /// Sends that complete in order are written in order. If the writer is
    /// gone the bytes are dropped (and counted): there is nowhere left to
    /// write them. Cancel-safe: a send dropped while waiting queues nothing.
    pub async fn send(&self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        // A buffer larger than the whole budget takes all of it: it then
        // waits for the queue to empty, and memory stays bounded by the
        // budget plus that one buffer.
        let permits = u32::try_from(bytes.len()).map_or(self.total, |n| n.min(self.total));
        let mut unsent = Unsent {
            shared: &self.shared,
            bytes: Some(bytes),
        };
        match self.shared.budget.acquire_many(permits).await {
            // The writer gives the permits back after writing the bytes.
            Ok(permit) => permit.forget(),
            // Closed: the writer thread is gone, or stdout was given up on.
            Err(_) => return,
        }
        if let Some(bytes) = unsent.bytes.take() {
            self.queue(bytes, permits, Kind::Output);
        }
    }

    /// Queues `bytes` at once, never waiting: for the supervisor's own
    /// `system` lines, which must not stall pm's loop. They have a budget of
    /// their own ([`SYSTEM_BUDGET`]); while it is used up (stdout takes
    /// nothing), they are dropped and counted.
    pub fn send_now(&self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let total = u32::try_from(SYSTEM_BUDGET).unwrap_or(u32::MAX);
        let permits = u32::try_from(bytes.len()).map_or(total, |n| n.min(total));
        match self.shared.system_budget.try_acquire_many(permits) {
            Ok(permit) => permit.forget(),
            Err(_) => {
                self.shared.drop_lines(lines_in(&bytes));
                return;
            }
        }
        self.queue(bytes, permits, Kind::System);
    }

    fn queue(&self, mut bytes: Vec<u8>, permits: u32, kind: Kind) {
        let shared = &*self.shared;
        let _order = shared.order.lock().unwrap_or_else(PoisonError::into_inner);
        if kind != Kind::End {
            match self.write_directly(&bytes) {
                Direct::All => {
                    self.written_directly(bytes, permits, kind);
                    return;
                }
                Direct::Part(written) => {
                    bytes.drain(..written);
                }
                Direct::None => {}
            }
        }
        shared.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(mpsc::SendError(item)) = self.queue.send(Item {
            bytes,
            permits,
            kind,
        }) {
            // The writer thread is gone; the bytes go with it.
            shared.pending.fetch_sub(1, Ordering::SeqCst);
            shared.drop_lines(lines_in(&item.bytes));
        }
    }

    /// Writes `bytes` straight to the direct descriptor when nothing is
    /// queued and the write need not wait (a pipe with room): the writer
    /// thread's hand-off (a wake-up, two context switches) is then saved.
    /// Called with `order` held, so nothing is queued meanwhile.
    fn write_directly(&self, bytes: &[u8]) -> Direct {
        let shared = &*self.shared;
        let fd = shared.direct.load(Ordering::Relaxed);
        if fd < 0
            || bytes.len() > DIRECT_MAX
            || shared.pending.load(Ordering::SeqCst) != 0
            || shared.discarding.load(Ordering::SeqCst)
            || shared.failed.load(Ordering::SeqCst)
        {
            return Direct::None;
        }
        let slice = [IoSlice::new(bytes)];
        let written = super::sink::write_nowait(fd, &slice);
        if let Ok(written) = written {
            shared.directly.fetch_add(written as u64, Ordering::Relaxed);
        }
        match written {
            Ok(written) if written == bytes.len() => Direct::All,
            Ok(0) => Direct::None,
            Ok(written) => {
                shared.progressed();
                Direct::Part(written)
            }
            Err(error) => {
                // A descriptor that cannot write without waiting (a file,
                // a terminal) never will: the thread writes from now on.
                // Any other error is the thread's to meet and report.
                if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    shared.direct.store(-1, Ordering::Relaxed);
                }
                Direct::None
            }
        }
    }

    /// What a queued item's writing would have done: the budget back, the
    /// buffer kept for reuse, progress noted.
    fn written_directly(&self, bytes: Vec<u8>, permits: u32, kind: Kind) {
        let shared = &*self.shared;
        shared.progressed();
        match kind {
            Kind::Output => shared.budget.add_permits(permits as usize),
            Kind::System => shared.system_budget.add_permits(permits as usize),
            Kind::End | Kind::Wake => {}
        }
        if !shared.release_due.load(Ordering::Relaxed)
            && !shared.release_due.swap(true, Ordering::SeqCst)
        {
            // Carries no bytes, so it may pass queued items: not pending.
            let _ = self.queue.send(Item {
                bytes: Vec::new(),
                permits: 0,
                kind: Kind::Wake,
            });
        }
        self.give_back(bytes);
    }

    /// Buffers in the pool, for tests.
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) fn pooled(&self) -> usize {
        self.shared.pool.lock().map_or(0, |pool| pool.len())
    }

    /// Keeps `bytes`, a buffer from [`OutputTx::buffer`] that is not sent
    /// (nothing was read into it), for the next one to ask.
    pub fn give_back(&self, mut bytes: Vec<u8>) {
        if bytes.capacity() > 0
            && bytes.capacity() <= POOL_CAPACITY
            && let Ok(mut pool) = self.shared.pool.lock()
            && pool.len() < POOL_LEN
        {
            bytes.clear();
            pool.push(bytes);
        }
    }

    /// Lets senders write to `fd` themselves while nothing is queued, with
    /// writes that never wait (`RWF_NOWAIT`; a pipe takes them, a file or a
    /// terminal refuses and is then left to the thread). `fd` must be what
    /// the writer thread's sink writes to, with nothing of its own in
    /// between (no buffer, no copy elsewhere).
    pub fn write_directly_to(&self, fd: std::os::fd::RawFd) {
        self.shared.direct.store(fd, Ordering::Relaxed);
    }

    /// Whether stdout has taken nothing for [`STALL`] while a write waits.
    pub fn stalled(&self) -> bool {
        let shared = &self.shared;
        shared.writing.load(Ordering::Relaxed)
            && shared
                .now_ms()
                .saturating_sub(shared.progress_at.load(Ordering::Relaxed))
                >= u64::try_from(STALL.as_millis()).unwrap_or(u64::MAX)
    }

    /// Gives up on stdout: from now on nothing more is written; what is
    /// queued and whatever is sent later is dropped and counted, and senders
    /// never wait. The write in progress, if any, is left to itself.
    pub fn discard(&self) {
        let shared = &self.shared;
        if shared.discarding.swap(true, Ordering::SeqCst) {
            return;
        }
        shared.budget.close();
        shared.system_budget.close();
        // The writer thread is inside a write that does not return (or has
        // ended): count what it will never write.
        if let Ok(items) = shared.items.try_lock() {
            while let Ok(item) = items.try_recv() {
                shared.drop_lines(lines_in(&item.bytes));
            }
        }
    }

    /// Lines dropped so far: `system` lines beyond their budget, sends cut
    /// short, and everything not written once stdout was given up on.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped_in_all()
    }

    /// Ends the output: what was queued before is written, then the writer
    /// thread ends. Waits for that while stdout takes bytes; gives up
    /// (see [`OutputTx::discard`]) once it has taken none for [`STALL`], or
    /// when `interrupt` resolves. Returns the lines dropped in all.
    ///
    /// With `give_up` false (everything finished, nobody asked pm to stop),
    /// a stalled stdout is waited for: only `interrupt` cuts it short.
    pub async fn end(&self, give_up: bool, interrupt: impl Future<Output = ()>) -> u64 {
        self.queue(Vec::new(), 0, Kind::End);
        let mut ended = self.shared.ended.subscribe();
        let mut interrupt = std::pin::pin!(interrupt);
        loop {
            if *ended.borrow_and_update() {
                return self.dropped();
            }
            if self.shared.discarding.load(Ordering::SeqCst) || (give_up && self.stalled()) {
                break;
            }
            // The earliest moment the writer could count as stalled.
            let since = self.shared.progress_at.load(Ordering::Relaxed);
            let stall_at =
                self.shared.epoch + Duration::from_millis(since) + STALL + Duration::from_millis(1);
            tokio::select! {
                changed = ended.changed() => {
                    if changed.is_err() {
                        return self.dropped();
                    }
                }
                () = &mut interrupt => break,
                () = tokio::time::sleep_until(stall_at.max(Instant::now()).into()) => {}
            }
        }
        self.discard();
        self.dropped()
    }
}

/// The writer thread's handle.
pub struct Writer {
    thread: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Waits until the writer thread has written and flushed everything
    /// queued and ended (after every [`OutputTx`] is dropped, or after
    /// [`OutputTx::end`]), and returns the lines dropped in all. When stdout
    /// was given up on and the thread is still blocked in its write, it is
    /// left there and this returns at once.
    ///
    /// Call it after the runtime (and every task holding a sender) is gone:
    /// a sender still alive makes this wait forever.
    pub fn finish(self) -> u64 {
        let shared = Arc::clone(&self.shared);
        let gave_up = shared.discarding.load(Ordering::SeqCst);
        if !gave_up || *shared.ended.borrow() {
            // A panic in the writer thread has nothing left to report here:
            // the output is lost either way.
            let _ = self.thread.join();
        }
        shared.dropped_in_all()
    }
}

/// Starts the writer thread on `sink` with the default budget.
///
/// On the first write error (a broken pipe: the reader left; a full disk),
/// `on_write_error` is called once with it; from then on output is read and
/// discarded, so senders never block, and nothing is printed about it.
pub fn spawn_writer<W: Write + Send + 'static>(
    sink: W,
    on_write_error: Box<dyn FnOnce(io::Error) + Send>,
) -> io::Result<(OutputTx, Writer)> {
    spawn_with_budget(sink, on_write_error, DEFAULT_BUDGET)
}

pub(super) fn spawn_with_budget<W: Write + Send + 'static>(
    sink: W,
    on_write_error: Box<dyn FnOnce(io::Error) + Send>,
    budget: usize,
) -> io::Result<(OutputTx, Writer)> {
    let total = u32::try_from(budget).unwrap_or(u32::MAX).max(1);
    let (queue, items) = mpsc::channel();
    let (ended, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        budget: Semaphore::new(total as usize),
        system_budget: Semaphore::new(SYSTEM_BUDGET),
        pool: Mutex::new(Vec::new()),
        items: Mutex::new(items),
        dropped: AtomicU64::new(0),
        in_flight: Mutex::new(None),
        discarding: AtomicBool::new(false),
        writing: AtomicBool::new(false),
        progress_at: AtomicU64::new(0),
        epoch: Instant::now(),
        ended,
        pending: AtomicU64::new(0),
        order: Mutex::new(()),
        direct: std::sync::atomic::AtomicI32::new(-1),
        failed: AtomicBool::new(false),
        directly: AtomicU64::new(0),
        release_due: AtomicBool::new(false),
    });
    let closer = CloseOnExit(Arc::clone(&shared));
    let thread = std::thread::Builder::new()
        .name("pm-output".into())
        // Its buffers live on the heap; a small stack keeps the thread cheap.
        .stack_size(256 * 1024)
        .spawn(move || run(sink, closer, on_write_error))?;
    let writer = Writer {
        thread,
        shared: Arc::clone(&shared),
    };
    Ok((
        OutputTx {
            queue,
            shared,
            total,
        },
        writer,
    ))
}

/// Closes the budgets when the writer thread ends, however it ends, so that
/// a sender waiting for room is released (and drops its bytes) instead of
/// waiting forever, and says that the thread has ended.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.budget.close();
        self.0.system_budget.close();
        self.0.ended.send_replace(true);
    }
}

/// The most one write call is given. A blocking write to a pipe returns
/// only once all of it is taken, so smaller calls let a slow reader show
/// progress (and never look stalled) at the cost of a few more calls.
const WRITE_CHUNK: usize = 64 * 1024;

/// The sink, written in calls of at most [`WRITE_CHUNK`] bytes, noting each
/// one that makes progress.
struct Watched<'a, W> {
    sink: W,
    shared: &'a Shared,
}

impl<W: Write> Write for Watched<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.sink.write(&buf[..buf.len().min(WRITE_CHUNK)])?;
        self.shared.progressed();
        Ok(written)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut limited = Vec::with_capacity(bufs.len());
        let mut total = 0;
        for buf in bufs {
            if total >= WRITE_CHUNK {
                break;
            }
            let take = buf.len().min(WRITE_CHUNK - total);
            limited.push(IoSlice::new(&buf[..take]));
            total += take;
        }
        let written = self.sink.write_vectored(&limited)?;
        self.shared.progressed();
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

fn run<W: Write>(sink: W, closer: CloseOnExit, on_write_error: Box<dyn FnOnce(io::Error) + Send>) {
    let shared = &*closer.0;
    let mut sink = Watched { sink, shared };
    let mut on_write_error = Some(on_write_error);
    let mut batch: Vec<Item> = Vec::new();
    // How long to wait for more output before releasing memory, while a
    // release is due (output came since the last one).
    let mut wait = IDLE;
    let mut end = false;
    while !end {
        {
            let items = shared.items.lock().unwrap_or_else(PoisonError::into_inner);
            let next = if shared.release_due.load(Ordering::SeqCst) {
                items.recv_timeout(wait)
            } else {
                items.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            let first = match next {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => {
                    drop(items);
                    // Senders may have written directly since: idle means
                    // no output at all for IDLE.
                    let quiet = Duration::from_millis(
                        shared
                            .now_ms()
                            .saturating_sub(shared.progress_at.load(Ordering::Relaxed)),
                    );
                    if quiet >= IDLE {
                        shared.release_due.store(false, Ordering::SeqCst);
                        drain_pool(shared);
                    } else {
                        wait = IDLE - quiet;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            wait = IDLE;
            shared.release_due.store(true, Ordering::SeqCst);
            if first.kind != Kind::Wake {
                batch.push(first);
            }
            // Take whatever else is queued already, never waiting for more:
            // what is here is written now, in as few calls as possible.
            while batch.len() < IOV_MAX && batch.last().is_none_or(|item| item.kind != Kind::End) {
                match items.try_recv() {
                    Ok(item) if item.kind == Kind::Wake => {}
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        end = batch.iter().any(|item| item.kind == Kind::End);
        if shared.discarding.load(Ordering::SeqCst) {
            shared.drop_lines(batch.iter().map(|item| lines_in(&item.bytes)).sum());
        } else if !shared.failed.load(Ordering::SeqCst) {
            let writing = Arc::new(std::mem::take(&mut batch));
            let in_flight = |batch| {
                *shared
                    .in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = batch;
            };
            in_flight(Some(Arc::clone(&writing)));
            shared.progressed();
            shared.writing.store(true, Ordering::SeqCst);
            let result = write_batch(&mut sink, &writing).and_then(|()| sink.flush());
            shared.writing.store(false, Ordering::SeqCst);
            in_flight(None);
            // Unless a count of what was given up on holds it still.
            batch = Arc::try_unwrap(writing).unwrap_or_else(|writing| {
                writing
                    .iter()
                    .map(|item| Item {
                        bytes: Vec::new(),
                        permits: item.permits,
                        kind: item.kind,
                    })
                    .collect()
            });
            if let Err(error) = result {
                shared.failed.store(true, Ordering::SeqCst);
                if let Some(callback) = on_write_error.take() {
                    callback(error);
                }
            }
        }
        let (mut output, mut system) = (0, 0);
        for item in &batch {
            match item.kind {
                Kind::Output => output += item.permits as usize,
                Kind::System => system += item.permits as usize,
                Kind::End | Kind::Wake => {}
            }
        }
        // Written (or dropped): a sender may write directly again once
        // nothing is left queued.
        shared
            .pending
            .fetch_sub(batch.len() as u64, Ordering::SeqCst);
        // Whatever the pool holds, output allocated and freed memory: the
        // writer wakes once it has been idle for a while, to release both.
        recycle(shared, &mut batch);
        shared.budget.add_permits(output);
        shared.system_budget.add_permits(system);
    }
}

fn drain_pool(shared: &Shared) {
    let idle = shared
        .pool
        .lock()
        .map(|mut pool| std::mem::take(&mut *pool))
        .unwrap_or_default();
    // Freed here, outside the lock.
    drop(idle);
    release_free_memory();
}

/// Hands the C allocator's free memory back to the system. After a burst
/// of output, what it freed (written buffers, the scrollback's outgrown
/// rings) would otherwise stay resident in holes of its heap, which glibc
/// trims only at the top: 50 instances that filled their scrollback left
/// pm 1.7 times the size of what it keeps.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists, under its own
    // locks; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) give free pages back on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Empties `batch`, keeping some of its buffers for reuse.
fn recycle(shared: &Shared, batch: &mut Vec<Item>) {
    if let Ok(mut pool) = shared.pool.lock() {
        for item in batch.iter_mut().rev() {
            if pool.len() >= POOL_LEN {
                break;
            }
            if item.bytes.capacity() <= POOL_CAPACITY {
                let mut bytes = std::mem::take(&mut item.bytes);
                bytes.clear();
                pool.push(bytes);
            }
        }
    }
    // The rest are freed here, outside the lock.
    batch.clear();
}

/// Writes every item of `batch` completely, with vectored writes.
fn write_batch<W: Write>(sink: &mut W, batch: &[Item]) -> io::Result<()> {
    if let [item] = batch {
        return sink.write_all(&item.bytes);
    }
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|item| IoSlice::new(&item.bytes)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let count = rest.len().min(IOV_MAX);
        let offered: usize = rest[..count].iter().map(|slice| slice.len()).sum();
        match sink.write_vectored(&rest[..count]) {
            Ok(0) if offered > 0 => return Err(io::ErrorKind::WriteZero.into()),
            // A sink claiming more than it was given is broken; treat it as
            // a failed write rather than trusting the count.
            Ok(written) if written > offered => return Err(io::ErrorKind::InvalidData.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A sink whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            // Short writes, to exercise the vectored-write loop.
            let n = buf.len().min(100);
            self.0.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn nothing() -> Box<dyn FnOnce(io::Error) + Send> {
        Box::new(|_| {})
    }

    /// Joins the writer thread, from a thread of its own so the runtime
    /// goes on; a writer that never ends fails the test instead of hanging
    /// it.
    async fn finish(writer: Writer) -> u64 {
        let (done, ended) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = done.send(writer.finish());
        });
        tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the writer thread did not end within 10 s")
            .unwrap()
    }

    /// A writer on a pipe that senders may write to directly, with a
    /// budget of 64 KiB, and the pipe's read end.
    #[cfg(target_os = "linux")]
    fn direct_pipe() -> (std::io::PipeReader, OutputTx, Writer) {
        use std::os::fd::{AsRawFd, OwnedFd};
        let (read, write) = std::io::pipe().unwrap();
        let write = OwnedFd::from(write);
        let fd = write.as_raw_fd();
        let (tx, writer) = spawn_with_budget(
            crate::output::sink::FdSink::new(write),
            nothing(),
            64 * 1024,
        )
        .unwrap();
        tx.write_directly_to(fd);
        (read, tx, writer)
    }

    /// A pipe whose write end senders may write to directly, read slowly
    /// by a thread of its own (so the pipe fills, direct writes come out
    /// short or refused, and the rest goes through the queue), sent lines
    /// of every size from several tasks and threads: every byte arrives, in
    /// order, and no line is torn.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn direct_writes_and_queued_ones_keep_their_order() {
        use std::io::Read;
        let (mut read, tx, writer) = direct_pipe();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = vec![0u8; 3000];
            loop {
                match read.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => all.extend_from_slice(&chunk[..n]),
                }
                if all.len() % 7 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            all
        });
        let line = |who: usize, n: usize| {
            // 10 to about 20 000 bytes: some larger than the pipe's room.
            let pad = "x".repeat((n * 997) % (if n.is_multiple_of(50) { 20_000 } else { 200 }));
            format!("{who} {n} {pad}\n")
        };
        let local = tokio::task::LocalSet::new();
        for who in 0..4 {
            let tx = tx.clone();
            local.spawn_local(async move {
                for n in 0..400 {
                    tx.send(line(who, n).into_bytes()).await;
                    if n % 25 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        let from_thread = {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for n in 0..400 {
                    tx.send_now(line(9, n).into_bytes());
                }
            })
        };
        local.await;
        from_thread.join().unwrap();
        let directly = tx.shared.directly.load(Ordering::Relaxed);
        drop(tx);
        finish(writer).await;
        let out = String::from_utf8(reader.join().unwrap()).unwrap();
        // Both ways were taken: some bytes directly, the rest queued.
        assert!(
            directly > 0 && directly < out.len() as u64,
            "{directly} of {} bytes directly",
            out.len()
        );
        for who in [0, 1, 2, 3, 9] {
            let mine: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with(&format!("{who} ")))
                .collect();
            let expected: Vec<String> = (0..400)
                .map(|n| line(who, n).trim_end_matches('\n').to_string())
                .collect();
            if who == 9 {
                // send_now drops what exceeds its budget; the rest is whole
                // and in order.
                let mut at = 0;
                for l in &mine {
                    let found = expected[at..].iter().position(|e| e == l);
                    at +=
                        found.unwrap_or_else(|| panic!("{who}: torn or out of order: {l:.40}")) + 1;
                }
            } else {
                let first_difference = mine
                    .iter()
                    .zip(&expected)
                    .position(|(got, wanted)| got != wanted);
                assert!(
                    first_difference.is_none() && mine.len() == expected.len(),
                    "sender {who}: {} lines of {}, first difference at {first_difference:?}: {:.60?}",
                    mine.len(),
                    expected.len(),
                    first_difference.map(|i| (mine[i], &expected[i])),
                );
            }
        }
        let lines = out.lines().count();
        assert!(lines >= 1600, "{lines} lines");
    }

    #[tokio::test]
    async fn many_senders_in_order_lose_nothing() {
        let sink = Shared::default();
        let (tx, writer) = spawn_with_budget(sink.clone(), nothing(), 4096).unwrap();
        let local = tokio::task::LocalSet::new();
        for task in 0..8 {
            let tx = tx.clone();
            local.spawn_local(async move {
                for line in 0..500 {
                    let mut buf = format!("t{task} {line}\n").into_bytes();
                    if line % 7 == 0 {
                        // Several lines in one buffer, too.
                        buf.extend_from_slice(format!("t{task} {line}b\n").as_bytes());
                    }
                    tx.send(buf).await;
                    if line % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        local.await;
        tx.send_now(b"system done\n".to_vec());
        drop(tx);
        finish(writer).await;

        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.last(), Some(&"system done"));
        for task in 0..8 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("t{task} ")))
                .collect();
            let mut expected = Vec::new();
            for line in 0..500 {
                expected.push(format!("t{task} {line}"));
                if line % 7 == 0 {
                    expected.push(format!("t{task} {line}b"));
                }
            }
            assert_eq!(mine, expected);
        }
    }

    #[tokio::test]
    async fn send_now_is_ordered_after_earlier_sends() {
        let sink = Shared::default();
        let (tx, writer) = spawn_with_budget(sink.clone(), nothing(), 64).unwrap();
        for i in 0..100 {
            tx.send(format!("web.1 | {i}\n").into_bytes()).await;
        }
        tx.send_now(b"system | web.1 exited\n".to_vec());
        drop(tx);
        finish(writer).await;
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(
            out.ends_with("web.1 | 99\nsystem | web.1 exited\n"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 101);
    }

    /// Fails every write as a closed pipe does.
    struct Broken(Arc<AtomicUsize>);

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_broken_pipe_calls_back_once_and_never_blocks() {
        let calls = Arc::new(AtomicUsize::new(0));
        let writes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let (tx, writer) = spawn_with_budget(
            Broken(Arc::clone(&writes)),
            Box::new(move |error: io::Error| {
                assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
                counter.fetch_add(1, Ordering::SeqCst);
            }),
            1024,
        )
        .unwrap();
        // Far more than the budget: senders must keep going.
        let sending = async {
            for _ in 0..2000 {
                tx.send(vec![b'x'; 500]).await;
                tx.send_now(b"system | x\n".to_vec());
            }
        };
        tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("senders blocked on a broken pipe");
        drop(tx);
        finish(writer).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            writes.load(Ordering::SeqCst),
            1,
            "no write after the failure"
        );
    }

    /// Blocks every write until the test lets it through.
    struct Stalled {
        gate: std::sync::mpsc::Receiver<()>,
        written: Arc<AtomicUsize>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            // Once the gate's sender is dropped, writes flow freely.
            let _ = self.gate.recv();
            self.written.fetch_add(buf.len(), Ordering::SeqCst);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_stalled_sink_makes_send_wait_within_the_budget() {
        const BUDGET: usize = 10_000;
        const CHUNK: usize = 1000;
        let (gate, gate_rx) = std::sync::mpsc::channel();
        let written = Arc::new(AtomicUsize::new(0));
        let sink = Stalled {
            gate: gate_rx,
            written: Arc::clone(&written),
        };
        let (tx, writer) = spawn_with_budget(sink, nothing(), BUDGET).unwrap();
        let mut accepted = 0;
        loop {
            let send = tx.send(vec![b'x'; CHUNK]);
            match tokio::time::timeout(Duration::from_millis(200), send).await {
                Ok(()) => accepted += CHUNK,
                Err(_) => break,
            }
            assert!(
                accepted <= BUDGET,
                "send never waited: {accepted} bytes queued"
            );
        }
        // Everything queued or in the stalled write fits in the budget.
        assert_eq!(accepted, BUDGET);
        assert_eq!(written.load(Ordering::SeqCst), 0);
        // Releasing the sink lets the senders go on.
        drop(gate);
        tokio::time::timeout(Duration::from_secs(10), tx.send(vec![b'y'; CHUNK]))
            .await
            .expect("send still blocked after the sink resumed");
        drop(tx);
        finish(writer).await;
        assert_eq!(written.load(Ordering::SeqCst), BUDGET + CHUNK);
    }

    #[tokio::test]
    async fn system_lines_are_bounded_while_stdout_stalls() {
        let (gate, gate_rx) = std::sync::mpsc::channel();
        let written = Arc::new(AtomicUsize::new(0));
        let sink = Stalled {
            gate: gate_rx,
            written: Arc::clone(&written),
        };
        let (tx, writer) = spawn_with_budget(sink, nothing(), 1000).unwrap();
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let sent = 20 * SYSTEM_BUDGET / line.len();
        for _ in 0..sent {
            tx.send_now(line.clone());
        }
        // Beyond its budget (plus the one line the stalled write holds),
        // every line was dropped and counted, none queued.
        let kept = SYSTEM_BUDGET / line.len() + 1;
        assert!(
            tx.dropped() as usize >= sent - kept,
            "dropped {} of {sent}",
            tx.dropped()
        );
        drop(gate);
        drop(tx);
        let dropped = finish(writer).await as usize;
        assert_eq!(
            written.load(Ordering::SeqCst),
            (sent - dropped) * line.len()
        );
        assert!(sent - dropped <= kept, "{} lines written", sent - dropped);
    }

    #[tokio::test]
    async fn end_gives_up_on_a_stalled_sink_and_counts_what_it_drops() {
        let (gate, gate_rx) = std::sync::mpsc::channel::<()>();
        let sink = Stalled {
            gate: gate_rx,
            written: Arc::default(),
        };
        let (tx, writer) = spawn_with_budget(sink, nothing(), 1_000_000).unwrap();
        // The stall counts from the first write, which the first send starts.
        let started = std::time::Instant::now();
        for i in 0..1000 {
            tx.send(format!("line {i}\n").into_bytes()).await;
        }
        tx.send_now(b"system | one\nsystem | two\n".to_vec());
        let dropped = tokio::time::timeout(
            Duration::from_secs(10),
            tx.end(true, std::future::pending()),
        )
        .await
        .expect("end waited on a stalled sink");
        assert!(
            started.elapsed() >= STALL,
            "gave up before the sink stalled"
        );
        // Nothing was written: every line is counted, queued or in flight.
        assert_eq!(dropped, 1002);
        // Senders no longer wait, and what they send is dropped too.
        tokio::time::timeout(Duration::from_secs(10), tx.send(b"late\n".to_vec()))
            .await
            .expect("send waited after giving up");
        drop(tx);
        // The writer is left in its write: finish does not wait for it.
        assert_eq!(writer.finish(), 1003);
        drop(gate);
    }

    #[tokio::test]
    async fn end_is_cut_short_by_an_interrupt() {
        let (_gate, gate_rx) = std::sync::mpsc::channel::<()>();
        let sink = Stalled {
            gate: gate_rx,
            written: Arc::default(),
        };
        let (tx, _writer) = spawn_with_budget(sink, nothing(), 1000).unwrap();
        tx.send(b"a\n".to_vec()).await;
        // The line is in the write that never returns, not still queued.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !tx.shared.writing.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "never wrote");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = std::time::Instant::now();
        let dropped = tx.end(true, std::future::ready(())).await;
        assert!(
            started.elapsed() < STALL,
            "the interrupt did not cut it short"
        );
        assert_eq!(dropped, 1);
    }

    #[tokio::test]
    async fn end_waits_for_a_slow_sink_that_keeps_taking() {
        /// Takes 10 bytes per write, 5 ms apart: slow, never stalled.
        struct Slow(Arc<Mutex<Vec<u8>>>);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(5));
                let n = buf.len().min(10);
                self.0.lock().unwrap().extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let bytes = Arc::default();
        let (tx, writer) = spawn_with_budget(Slow(Arc::clone(&bytes)), nothing(), 100_000).unwrap();
        // About 2.5 s of writing: longer than STALL, yet never stalled.
        let text: String = (0..500).map(|i| format!("{i:08}\n")).collect();
        tx.send(text.clone().into_bytes()).await;
        let dropped = tokio::time::timeout(
            Duration::from_secs(30),
            tx.end(true, std::future::pending()),
        )
        .await
        .expect("end did not return");
        assert_eq!(dropped, 0);
        drop(tx);
        assert_eq!(writer.finish(), 0);
        assert_eq!(
            String::from_utf8(bytes.lock().unwrap().clone()).unwrap(),
            text
        );
    }

    #[tokio::test]
    async fn a_buffer_larger_than_the_budget_still_goes_through() {
        let sink = Shared::default();
        let (tx, writer) = spawn_with_budget(sink.clone(), nothing(), 100).unwrap();
        tx.send(vec![b'z'; 10_000]).await;
        tx.send(b"\n".to_vec()).await;
        drop(tx);
        finish(writer).await;
        assert_eq!(sink.0.lock().unwrap().len(), 10_001);
    }

    #[tokio::test]
    async fn a_dead_writer_drops_output_without_blocking() {
        struct Panics;
        impl Write for Panics {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                panic!("sink panicked (expected by this test)");
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (tx, writer) = spawn_with_budget(Panics, nothing(), 10).unwrap();
        tx.send(b"first\n".to_vec()).await;
        let sending = async {
            for _ in 0..100 {
                tx.send(b"more\n".to_vec()).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("senders blocked on a dead writer");
        drop(tx);
        finish(writer).await;
    }

    #[tokio::test]
    async fn written_buffers_are_reused_then_released_when_idle() {
        let sink = Shared::default();
        let (tx, writer) = spawn_with_budget(sink.clone(), nothing(), 1000).unwrap();
        assert_eq!(tx.buffer().capacity(), 0, "nothing to reuse yet");
        let mut buf = tx.buffer();
        buf.extend_from_slice(&[b'x'; 300]);
        let capacity = buf.capacity();
        tx.send(buf).await;
        // The buffer comes back once written.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let reused = loop {
            let buf = tx.buffer();
            if buf.capacity() > 0 {
                break buf;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the written buffer never came back to the pool"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), capacity);
        let mut reused = reused;
        reused.extend_from_slice(&[b'y'; 300]);
        tx.send(reused).await;
        // Pooled once written, then emptied after a second of silence.
        let pooled = |n: usize| tx.shared.pool.lock().unwrap().len() == n;
        let deadline = std::time::Instant::now() + IDLE * 5;
        while !pooled(1) {
            assert!(std::time::Instant::now() < deadline, "buffer not pooled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while !pooled(0) {
            assert!(std::time::Instant::now() < deadline, "pool kept while idle");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(tx);
        finish(writer).await;
        assert_eq!(sink.0.lock().unwrap().len(), 600);
    }

    /// Output that all went directly (a pipe with room) never reached the
    /// writer thread: it still empties the pool and releases memory once
    /// output has been idle.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn direct_writes_are_released_when_idle_too() {
        use std::io::Read;
        let (mut read, tx, writer) = direct_pipe();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = read.read_to_end(&mut all);
            all
        });
        let mut buf = tx.buffer();
        buf.extend_from_slice(b"one line\n");
        tx.send(buf).await;
        assert_eq!(
            tx.shared.directly.load(Ordering::Relaxed),
            9,
            "written directly"
        );
        let pooled = |n: usize| tx.shared.pool.lock().unwrap().len() == n;
        assert!(pooled(1), "the directly written buffer is kept for reuse");
        let deadline = std::time::Instant::now() + IDLE * 5;
        while !pooled(0) {
            assert!(std::time::Instant::now() < deadline, "pool kept while idle");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // And again after the release: the next idle period is seen too.
        let mut buf = tx.buffer();
        buf.extend_from_slice(b"two\n");
        tx.send(buf).await;
        assert!(pooled(1));
        let deadline = std::time::Instant::now() + IDLE * 5;
        while !pooled(0) {
            assert!(std::time::Instant::now() < deadline, "pool kept while idle");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(tx.shared.directly.load(Ordering::Relaxed), 13);
        drop(tx);
        finish(writer).await;
        assert_eq!(reader.join().unwrap(), b"one line\ntwo\n");
    }

    #[test]
    fn the_default_writer_works_on_a_pipe() {
        use std::io::Read;
        let (mut reader, pipe) = std::io::pipe().unwrap();
        let (tx, writer) = spawn_writer(pipe, nothing()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reading = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        runtime.block_on(async {
            for i in 0..10_000 {
                tx.send(format!("line {i}\n").into_bytes()).await;
            }
        });
        drop(tx);
        // The reader ends when the writer has closed the pipe.
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            writer.finish();
            let _ = done.send(reading.join());
        });
        let all = ended
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer did not end and close the pipe within 10 s")
            .unwrap();
        let text = String::from_utf8(all).unwrap();
        assert_eq!(text.lines().count(), 10_000);
        assert!(text.ends_with("line 9999\n"));
    }
}
