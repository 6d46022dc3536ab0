//! The load balancer of a process type (`proxy = 8080` in pm.toml): accepts
//! TCP connections and spreads them over the type's instances that are in
//! rotation, the way production's router spreads requests over web processes.
//! The same code serves `pm start`'s proxy and `pm balance`, the balancer
//! the systemd and compose exports run.
//!
//! Whoever owns the rotation publishes it on a watch channel after every
//! change (`pm start`'s runtime: instance ports on 127.0.0.1; `pm balance`:
//! resolved and probed addresses); this module only reads it. A connection goes to the next
//! instance in round-robin order; one that refuses is skipped and the next
//! tried, and while no instance can take it the client waits (up to
//! [`CONNECT_WAIT`]) rather than being refused. Open connections belong to
//! their own tasks, so an instance leaving the rotation never cuts them.
//!
//! Under `pm start` the balancers run on [`Threads`]: a few threads, each
//! with a runtime of its own and its own copy of every listener. A thread
//! that accepts a connection keeps it (connects to its instance and relays
//! it) unless another thread relays fewer connections; then that one gets
//! it, once, and relays it to the end. Without that, the burst of
//! connections a client pool opens at once lands on whichever thread woke
//! first, and keep-alive connections stay where they landed: 8 of them on
//! one thread leave the other idle (HAProxy also hands each accepted
//! connection to its least loaded thread).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long a client may wait for an instance to take its connection.
pub const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// One connect attempt to an instance.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Between two rounds over a rotation whose every instance refused.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Where an instance in rotation is reached.
pub trait Backend: Clone + Send + Sync + 'static {
    fn address(&self) -> SocketAddr;
}

/// An instance of `pm start`, by its port on 127.0.0.1.
impl Backend for u16 {
    fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, *self))
    }
}

/// An instance anywhere (`pm balance`).
impl Backend for SocketAddr {
    fn address(&self) -> SocketAddr {
        *self
    }
}

/// The instances in rotation, in instance order.
pub type Rotation<B = u16> = watch::Receiver<Vec<B>>;

/// Binds the balancer's address (`host:port`) before anything starts, so a
/// port in use is an error at once.
pub fn bind(host: &str, port: u16) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind((host, port))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The threads that relay for the balancers, each running a current-thread
/// runtime until this is dropped.
pub struct Threads {
    threads: Vec<Thread>,
    loads: Arc<Loads>,
}

/// The connections each thread relays, and how to reach it.
struct Loads {
    handles: Vec<tokio::runtime::Handle>,
    counts: Vec<AtomicUsize>,
}

impl Loads {
    /// The thread with the fewest connections; `me` unless another has
    /// strictly fewer.
    fn least(&self, me: usize) -> usize {
        let mut best = me;
        let mut fewest = self.counts[me].load(Ordering::Relaxed);
        for (index, count) in self.counts.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count < fewest {
                best = index;
                fewest = count;
            }
        }
        best
    }
}

/// One connection counted against its thread until the relay ends.
struct Load {
    loads: Arc<Loads>,
    index: usize,
}

impl Load {
    fn new(loads: &Arc<Loads>, index: usize) -> Load {
        loads.counts[index].fetch_add(1, Ordering::Relaxed);
        Load {
            loads: loads.clone(),
            index,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.loads.counts[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

struct Thread {
    handle: tokio::runtime::Handle,
    /// Dropping it ends the thread's runtime, and with it every connection
    /// it relays.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Threads {
    /// Starts `count` threads (at least one).
    pub fn start(count: usize) -> io::Result<Threads> {
        let threads: Vec<Thread> = (0..count.max(1))
            .map(|_| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name("pm-proxy".into())
                    .spawn(move || {
                        let _ = runtime.block_on(stopped);
                        runtime.shutdown_background();
                    })?;
                Ok(Thread {
                    handle,
                    _stop: stop,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let loads = Arc::new(Loads {
            handles: threads.iter().map(|t| t.handle.clone()).collect(),
            counts: threads.iter().map(|_| AtomicUsize::new(0)).collect(),
        });
        Ok(Threads { threads, loads })
    }

    /// Balances `listener`'s connections over `rotation` on every thread,
    /// each accepting on its own copy of the listener; round robin is one
    /// order over all of them.
    pub fn serve<B: Backend>(
        &self,
        listener: std::net::TcpListener,
        rotation: &Rotation<B>,
    ) -> io::Result<()> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut copies = Vec::with_capacity(self.threads.len());
        for _ in 1..self.threads.len() {
            copies.push(listener.try_clone()?);
        }
        copies.push(listener);
        for (index, (thread, copy)) in self.threads.iter().zip(copies).enumerate() {
            let spread = Spread {
                loads: self.loads.clone(),
                me: index,
            };
            thread
                .handle
                .spawn(accept(copy, rotation.clone(), next.clone(), Some(spread)));
        }
        Ok(())
    }
}

/// Accepts connections until the runtime drops the task.
pub async fn serve<B: Backend>(listener: std::net::TcpListener, rotation: Rotation<B>) {
    accept(listener, rotation, Arc::new(AtomicUsize::new(0)), None).await;
}

/// Which of the [`Threads`] an accept loop runs on.
struct Spread {
    loads: Arc<Loads>,
    me: usize,
}

async fn accept<B: Backend>(
    listener: std::net::TcpListener,
    rotation: Rotation<B>,
    next: Arc<AtomicUsize>,
    spread: Option<Spread>,
) {
    // Polled as a plain descriptor: a connection is taken as a plain socket
    // and registered only with the reactor of the thread that relays it, so
    // one handed to another thread costs no registration on this one.
    // SAFETY: the listener owns its descriptor until the AsyncFd drops it,
    // and always answers the same one.
    let registered = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) };
    let Ok(listener) = registered else {
        return;
    };
    loop {
        let taken = match listener.readable().await {
            Ok(mut ready) => match ready.try_io(|l| take(l.get_ref())) {
                Ok(taken) => taken,
                // Nothing waiting after all: readiness cleared, wait again.
                Err(_) => continue,
            },
            Err(e) => Err(e),
        };
        let client = match taken {
            Ok(client) => client,
            // Out of file descriptors and the like: back off a little
            // instead of spinning; accepted connections are unaffected.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (rotation, next) = (rotation.clone(), next.clone());
        let (handle, load) = match &spread {
            None => (None, None),
            Some(Spread { loads, me }) => {
                let target = loads.least(*me);
                let load = Load::new(loads, target);
                let handle = (target != *me).then(|| loads.handles[target].clone());
                (handle, Some(load))
            }
        };
        let relay = async move {
            if let Ok(client) = TcpStream::from_std(client) {
                forward(client, rotation, next).await;
            }
            drop(load);
        };
        match handle {
            Some(other) => drop(other.spawn(relay)),
            None => drop(tokio::spawn(relay)),
        }
    }
}

/// The next connection waiting on `listener`, non-blocking.
#[cfg(target_os = "linux")]
fn take(listener: &std::net::TcpListener) -> io::Result<std::net::TcpStream> {
    use nix::sys::socket::{SockFlag, accept4};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = accept4(listener.as_raw_fd(), flags)?;
    // SAFETY: accept4 just made `fd`, and nothing else holds it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(std::net::TcpStream::from(owned))
}

/// The next connection waiting on `listener`, non-blocking.
#[cfg(not(target_os = "linux"))]
fn take(listener: &std::net::TcpListener) -> io::Result<std::net::TcpStream> {
    let (client, _) = listener.accept()?;
    client.set_nonblocking(true)?;
    Ok(client)
}

async fn forward<B: Backend>(
    mut client: TcpStream,
    mut rotation: Rotation<B>,
    next: Arc<AtomicUsize>,
) {
    let _ = client.set_nodelay(true);
    // One buffer per direction for the connection's whole life.
    let mut buffers = Buffers {
        up: [0; BUFFER],
        down: [0; BUFFER],
    };
    // What the client sent before the instance answered, to replay it to
    // another instance if this one closes without a byte of answer.
    let mut sent: Vec<u8> = Vec::new();
    let mut client_done = false;
    for _ in 0..MAX_TRIES {
        let Some(mut backend) = connect(&mut rotation, &next).await else {
            return;
        };
        let _ = backend.set_nodelay(true);
        if backend.write_all(&sent).await.is_err() {
            continue;
        }
        if client_done {
            let _ = backend.shutdown().await;
        }
        let first = first_answer(
            &mut client,
            &mut backend,
            &mut buffers,
            &mut sent,
            &mut client_done,
        );
        match first.await {
            First::Answered => {
                relay(&mut client, &mut backend, &mut buffers, client_done).await;
                return;
            }
            First::Retry => continue,
            First::Give => return,
        }
    }
}

/// The bytes read from one side and not yet written to the other.
const BUFFER: usize = 8192;

struct Buffers {
    /// Client to instance.
    up: [u8; BUFFER],
    /// Instance to client.
    down: [u8; BUFFER],
}

/// Copies both ways until both sides are done; `client_done` when the
/// client's end was already read and passed on. The side that ends first
/// has its end passed on (`shutdown` of writing, so a half-closed
/// connection works as without pm); when the second ends, both are closed,
/// which tells the other side the same without a call of its own.
///
/// A side that ends with a reset gets the other one reset too (zero
/// linger), as the client would have seen without pm in between: a graceful
/// close would leave pm's end in TIME_WAIT, and under many short
/// connections those use up the local ports pm connects to instances from.
async fn relay(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    buffers: &mut Buffers,
    client_done: bool,
) {
    let mut up = Flow::new(&mut buffers.up);
    let mut down = Flow::new(&mut buffers.down);
    up.ended = client_done;
    let both = std::future::poll_fn(|cx| {
        let up_ready = up.poll(cx, client, backend, down.ended)?;
        let down_ready = down.poll(cx, backend, client, up.ended)?;
        if up_ready.is_ready() && down_ready.is_ready() {
            Poll::Ready(Ok::<(), io::Error>(()))
        } else {
            Poll::Pending
        }
    });
    if both.await.is_err() {
        let _ = client.set_zero_linger();
        let _ = backend.set_zero_linger();
    }
}

/// One direction of a relay.
struct Flow<'a> {
    buffer: &'a mut [u8],
    /// `buffer[start..end]` is still to be written.
    start: usize,
    end: usize,
    /// The reading side has ended.
    read_all: bool,
    /// Everything was written, and the end passed on if it had to be.
    ended: bool,
}

impl<'a> Flow<'a> {
    fn new(buffer: &'a mut [u8]) -> Flow<'a> {
        Flow {
            buffer,
            start: 0,
            end: 0,
            read_all: false,
            ended: false,
        }
    }

    /// Moves bytes from `from` to `to` until `from` ends (ready) or either
    /// would block (pending); `other_ended` when the opposite direction is
    /// over, so this one's end needs no shutdown: both are closed next.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpStream,
        to: &mut TcpStream,
        other_ended: bool,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            if self.start < self.end {
                let wrote =
                    ready!(Pin::new(&mut *to).poll_write(cx, &self.buffer[self.start..self.end]))?;
                if wrote == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += wrote;
                continue;
            }
            if self.read_all {
                if !other_ended {
                    ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                }
                self.ended = true;
                continue;
            }
            let mut read = ReadBuf::new(self.buffer);
            ready!(Pin::new(&mut *from).poll_read(cx, &mut read))?;
            let got = read.filled().len();
            if got == 0 {
                self.read_all = true;
            } else {
                self.start = 0;
                self.end = got;
            }
        }
    }
}

/// How many instances one connection may try when they close unanswered.
const MAX_TRIES: usize = 3;

/// Client bytes kept for a replay; past this, a connection is not retried.
const REPLAY_LIMIT: usize = 64 * 1024;

enum First {
    /// The instance sent its first bytes (already passed on to the client).
    Answered,
    /// The instance closed without answering and the request can be replayed.
    Retry,
    /// Nothing more to do: the client left, or the request is too big to replay.
    Give,
}

/// Relays client bytes to the instance until the instance's first answer.
async fn first_answer(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    buffers: &mut Buffers,
    sent: &mut Vec<u8>,
    client_done: &mut bool,
) -> First {
    let Buffers { up, down } = buffers;
    loop {
        tokio::select! {
            read = client.read(up), if !*client_done => match read {
                Ok(0) => {
                    *client_done = true;
                    let _ = backend.shutdown().await;
                }
                Ok(n) => {
                    if sent.len() + n > REPLAY_LIMIT {
                        // Too big to keep: no replay, plain relaying from here.
                        if backend.write_all(&up[..n]).await.is_ok() {
                            relay(client, backend, buffers, false).await;
                        }
                        return First::Give;
                    }
                    sent.extend_from_slice(&up[..n]);
                    if backend.write_all(&up[..n]).await.is_err() {
                        return First::Retry;
                    }
                }
                Err(_) => return First::Give,
            },
            read = backend.read(down) => match read {
                Ok(n) if n > 0 => {
                    if client.write_all(&down[..n]).await.is_err() {
                        return First::Give;
                    }
                    return First::Answered;
                }
                // Closed or reset before answering: the instance died or
                // refused the request; another may take it.
                Ok(_) | Err(_) => return First::Retry,
            },
        }
    }
}

/// A connection to the next instance that accepts one, or None when none
/// did within [`CONNECT_WAIT`].
async fn connect<B: Backend>(rotation: &mut Rotation<B>, next: &AtomicUsize) -> Option<TcpStream> {
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    loop {
        let ports = rotation.borrow_and_update().clone();
        if !ports.is_empty() {
            let start = next.fetch_add(1, Ordering::Relaxed);
            for k in 0..ports.len() {
                let backend = &ports[(start + k) % ports.len()];
                if let Ok(stream) = connect_one(backend.address()).await {
                    return Some(stream);
                }
            }
        }
        // Nobody took it: wait for the rotation to change (an instance
        // becoming ready), or retry shortly (one may just be binding).
        let pause = if ports.is_empty() {
            CONNECT_WAIT
        } else {
            RETRY_PAUSE
        };
        let wake = (tokio::time::Instant::now() + pause).min(deadline);
        tokio::select! {
            changed = rotation.changed() => if changed.is_err() { return None },
            _ = tokio::time::sleep_until(wake) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

/// One connect attempt, given up after [`CONNECT_TIMEOUT`]. The timer is
/// armed only when the connection is not made by the reactor's next turn:
/// on this host it almost always is, and arming a timer wakes the reactor
/// (a write to its eventfd) for each connection.
async fn connect_one(address: SocketAddr) -> io::Result<TcpStream> {
    let attempt = std::pin::pin!(attempt(address));
    let mut attempt = attempt;
    for turn in 0..2 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(attempt.as_mut().poll(cx))).await;
        if let Poll::Ready(made) = polled {
            return made;
        }
        if turn == 0 {
            // Runs again after the reactor has looked for events.
            tokio::task::yield_now().await;
        }
    }
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| io::ErrorKind::TimedOut)?
}

/// Connects to `address`. On Linux the outcome is read off the socket's
/// readiness: writable once made, closed or in error once refused. That
/// spares the `getsockopt(SO_ERROR)` a general-purpose connect makes to
/// fetch an error code nobody here reports.
#[cfg(target_os = "linux")]
async fn attempt(address: SocketAddr) -> io::Result<TcpStream> {
    use nix::errno::Errno;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, connect, socket};
    use std::os::fd::AsRawFd;
    let family = if address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(address)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
    let ready = stream.ready(Interest::WRITABLE | Interest::ERROR).await?;
    if ready.is_write_closed() || ready.is_error() {
        return Err(io::ErrorKind::ConnectionRefused.into());
    }
    Ok(stream)
}

#[cfg(not(target_os = "linux"))]
async fn attempt(address: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect(address).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A backend that answers each connection with its own name.
    async fn backend(name: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                s.write_all(name.as_bytes()).await.unwrap();
            }
        });
        (port, task)
    }

    async fn ask(port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text
    }

    /// A port nobody listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_closed_unanswered_is_replayed_to_the_next_instance() {
        // An instance that dies with the request: reads it, answers nothing.
        let dying = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dying_port = dying.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = dying.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
            }
        });
        // An instance that echoes what it got.
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).await.unwrap();
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let (_tx, rx) = watch::channel(vec![dying_port, echo_port]);
        let listener = bind("127.0.0.1", 0).unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, rx));
        for _ in 0..4 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        }
    }

    /// A balancer in front of one instance that `serve_one` runs for each
    /// connection; its port.
    async fn balanced<F, Fut>(serve_one: F) -> u16
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let instance = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let instance_port = instance.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (s, _) = instance.accept().await.unwrap();
                tokio::spawn(serve_one(s));
            }
        });
        let (tx, rx) = watch::channel(vec![instance_port]);
        let listener = bind("127.0.0.1", 0).unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _keep = tx;
            serve(listener, rx).await;
        });
        port
    }

    /// `future`'s output, or a failed test after 20 s.
    async fn within<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(20), future)
            .await
            .expect("no answer within 20 s")
    }

    /// Bytes that tell where they were cut or reordered.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_client_ending_first_is_passed_on_and_the_answer_still_comes() {
        // The instance reads to the end before it answers, then closes.
        let port = balanced(|mut s| async move {
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(format!("{} bytes", got.len()).as_bytes())
                .await
                .unwrap();
        })
        .await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&pattern(100_000, 1)).await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = String::new();
        within(s.read_to_string(&mut answer)).await.unwrap();
        assert_eq!(answer, "100000 bytes");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_instance_ending_first_is_passed_on_and_the_client_may_still_send() {
        // The instance answers and ends its side, then keeps reading.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let port = balanced(move |mut s| {
            let tx = tx.clone();
            async move {
                let mut ask = [0u8; 3];
                s.read_exact(&mut ask).await.unwrap();
                s.write_all(b"done").await.unwrap();
                s.shutdown().await.unwrap();
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                let _ = tx.send(rest);
            }
        })
        .await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"ask").await.unwrap();
        let mut answer = Vec::new();
        within(s.read_to_end(&mut answer)).await.unwrap();
        assert_eq!(answer, b"done");
        // The client's sending side is still open, through to the instance.
        s.write_all(&pattern(300_000, 2)).await.unwrap();
        s.shutdown().await.unwrap();
        let rest = within(rx.recv()).await.unwrap();
        assert!(rest == pattern(300_000, 2), "{} bytes after", rest.len());
        // Nothing more, and no reset: pm closed with no byte unread.
        let mut after = [0u8; 1];
        assert_eq!(within(s.read(&mut after)).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn large_transfers_both_ways_arrive_whole() {
        // An echo: every byte goes out again, while more comes in.
        let port = balanced(|s| async move {
            let (mut r, mut w) = s.into_split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        })
        .await;
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let sent = pattern(4 << 20, 3);
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                w.write_all(&sent).await.unwrap();
                w.shutdown().await.unwrap();
            })
        };
        let mut back = Vec::new();
        within(r.read_to_end(&mut back)).await.unwrap();
        within(writer).await.unwrap();
        assert!(back == sent, "{} bytes back of {}", back.len(), sent.len());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reset_by_the_instance_resets_the_client() {
        let port = balanced(|mut s| async move {
            let mut ask = [0u8; 3];
            s.read_exact(&mut ask).await.unwrap();
            s.write_all(b"partial").await.unwrap();
            // Unread bytes at close make it a reset, as does zero linger.
            s.set_zero_linger().unwrap();
        })
        .await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"ask").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let end = loop {
            match within(s.read(&mut buf)).await {
                Ok(0) => break Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e.kind()),
            }
        };
        assert_eq!(end, Err(io::ErrorKind::ConnectionReset), "after {got:?}");
    }

    /// Keep-alive connections opened one after the other are spread evenly
    /// over the threads, each relaying its own to the end.
    #[test]
    fn connections_go_to_the_thread_relaying_fewest() {
        use std::io::{Read, Write};
        let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let backend_port = backend.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in backend.incoming() {
                let mut conn = conn.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        if conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let threads = Threads::start(2).unwrap();
        let (_tx, rx) = watch::channel(vec![backend_port]);
        let listener = bind("127.0.0.1", 0).unwrap();
        let port = listener.local_addr().unwrap().port();
        threads.serve(listener, &rx).unwrap();
        let counts = || -> Vec<usize> {
            threads
                .loads
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect()
        };
        let mut open = Vec::new();
        for n in 0..8u8 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&[b'a' + n]).unwrap();
            let mut echo = [0u8; 1];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(echo[0], b'a' + n);
            open.push(s);
        }
        assert_eq!(counts(), vec![4, 4]);
        // Every connection still relays on the thread it went to.
        for (n, s) in open.iter_mut().enumerate() {
            s.write_all(b"again").unwrap();
            let mut echo = [0u8; 5];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"again", "connection {n}");
        }
        // Closed connections no longer count.
        drop(open);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counts() != vec![0, 0] {
            assert!(std::time::Instant::now() < deadline, "{:?}", counts());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connect_attempt_tells_made_from_refused_at_once() {
        let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_address = open.local_addr().unwrap();
        let made = within(connect_one(open_address)).await.unwrap();
        assert_eq!(made.peer_addr().unwrap(), open_address);
        let (accepted, _) = within(open.accept()).await.unwrap();
        assert_eq!(accepted.local_addr().unwrap(), open_address);
        // Well within the 2 s an attempt may take.
        let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, closed_port()));
        let refused = tokio::time::timeout(Duration::from_millis(500), connect_one(closed))
            .await
            .expect("a refusal takes no timer");
        assert_eq!(
            refused.map(|_| ()).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn round_robin_skips_refusals_and_waits_for_an_instance() {
        let (a, _ta) = backend("a").await;
        let (b, _tb) = backend("b").await;
        let dead = closed_port();
        let (tx, rx) = watch::channel(vec![a, dead, b]);
        let listener = bind("127.0.0.1", 0).unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, rx));
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(ask(port).await);
        }
        // The refusing instance is skipped: every connection is answered.
        assert_eq!(seen.iter().filter(|s| *s == "a").count(), 2, "{seen:?}");
        assert_eq!(seen.iter().filter(|s| *s == "b").count(), 2, "{seen:?}");
        // An empty rotation holds the client until an instance is back.
        tx.send(vec![]).unwrap();
        let waiting = tokio::spawn(ask(port));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        tx.send(vec![b]).unwrap();
        assert_eq!(waiting.await.unwrap(), "b");
    }
}
