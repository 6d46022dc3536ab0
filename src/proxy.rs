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

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let (rotation, next) = (rotation.clone(), next.clone());
                let Some(Spread { loads, me }) = &spread else {
                    tokio::spawn(forward(client, rotation, next));
                    continue;
                };
                let target = loads.least(*me);
                let load = Load::new(loads, target);
                if target == *me {
                    tokio::spawn(async move {
                        forward(client, rotation, next).await;
                        drop(load);
                    });
                } else if let Ok(client) = client.into_std() {
                    // Registered again with the other thread's reactor.
                    loads.handles[target].spawn(async move {
                        if let Ok(client) = TcpStream::from_std(client) {
                            forward(client, rotation, next).await;
                        }
                        drop(load);
                    });
                }
            }
            // Out of file descriptors and the like: back off a little
            // instead of spinning; accepted connections are unaffected.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn forward<B: Backend>(
    mut client: TcpStream,
    mut rotation: Rotation<B>,
    next: Arc<AtomicUsize>,
) {
    let _ = client.set_nodelay(true);
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
        match first_answer(&mut client, &mut backend, &mut sent, &mut client_done).await {
            First::Answered => {
                relay(&mut client, &mut backend).await;
                return;
            }
            First::Retry => continue,
            First::Give => return,
        }
    }
}

/// Copies both ways until both sides are done. A side that ends with a
/// reset gets the other one reset too (zero linger), as the client would have
/// seen without pm in between: a graceful close would leave pm's end in
/// TIME_WAIT, and under many short connections those use up the local ports
/// pm connects to instances from.
async fn relay(client: &mut TcpStream, backend: &mut TcpStream) {
    if tokio::io::copy_bidirectional(client, backend)
        .await
        .is_err()
    {
        let _ = client.set_zero_linger();
        let _ = backend.set_zero_linger();
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
    sent: &mut Vec<u8>,
    client_done: &mut bool,
) -> First {
    let mut up = [0u8; 8192];
    let mut down = [0u8; 8192];
    loop {
        tokio::select! {
            read = client.read(&mut up), if !*client_done => match read {
                Ok(0) => {
                    *client_done = true;
                    let _ = backend.shutdown().await;
                }
                Ok(n) => {
                    if sent.len() + n > REPLAY_LIMIT {
                        // Too big to keep: no replay, plain relaying from here.
                        if backend.write_all(&up[..n]).await.is_ok() {
                            relay(client, backend).await;
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
            read = backend.read(&mut down) => match read {
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
                let attempt = TcpStream::connect(backend.address());
                if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
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

#[cfg(test)]
mod tests {
    use super::*;

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
