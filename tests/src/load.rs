//! The load generator the token benchmarks share: a closed loop (like wrk) of keep-alive
//! HTTP/1.1 connections on a current-thread runtime, sending one prepared request and reading
//! just the status line and `Content-Length`, and the CPU accounting around it (this process's
//! threads, or another process). Only 127.0.0.1 is contacted.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "benchmark support: a failed step aborts"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The CPU servers run on.
pub const SERVER_CPU: usize = 0;
/// The CPU the load generator runs on.
pub const CLIENT_CPU: usize = 1;

/// Pins the calling thread to `cpu` (a warning, and unpinned results, when it cannot).
pub fn pin_current_thread(cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data; sched_setaffinity(0, ..) only affects this thread.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: could not pin to CPU {cpu}; results are unpinned");
        }
    }
}

/// The calling thread's id.
pub fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::gettid() as i64
    }
}

/// utime + stime of one thread of this process, in microseconds.
pub fn thread_cpu_us(tid: i64) -> u64 {
    stat_cpu_us(&format!("/proc/self/task/{tid}/stat"))
}

/// utime + stime in the `stat` file at `path` (a process's or a thread's), in microseconds.
fn stat_cpu_us(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // After `(comm)` come field 3 (state), 4, ...: utime and stime (fields 14 and 15) are at
    // indices 11 and 12. Index the raw fields: some (tpgid) can be -1.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (field(11) + field(12)) * 1_000_000 / ticks
}

/// A hookd server running in this process on a current-thread runtime pinned to [`SERVER_CPU`].
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its thread's id, for [`thread_cpu_us`].
    pub tid: i64,
    /// Stops it.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// Ends when it has stopped.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts hookd over the data directory `dir` (or the PostgreSQL `database`).
pub fn start_server(dir: std::path::PathBuf, database: Option<String>) -> RunningServer {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Named, so a profile can tell the server's samples from the load generator's.
    let thread = std::thread::Builder::new()
        .name("hookd-server".to_owned())
        .spawn(move || {
            pin_current_thread(SERVER_CPU);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut config = hookd::app::ServeConfig::new(dir, "127.0.0.1:0".parse().unwrap());
                config.cache_dir = Some(crate::COMPILED_CACHE_DIR.into());
                config.secrets_key = Some(crate::TEST_SECRETS_KEY.to_owned());
                config.http.max_in_flight = 1024;
                config.database = database;
                let prepared = hookd::app::prepare(config).await.expect("server starts");
                ready_tx.send((prepared.addr, thread_id())).unwrap();
                prepared
                    .server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })
        .unwrap();
    let (addr, tid) = ready_rx.recv().unwrap();
    RunningServer {
        addr,
        tid,
        stop,
        thread,
    }
}

/// utime + stime of process `pid`, in microseconds.
pub fn process_cpu_us(pid: u32) -> u64 {
    stat_cpu_us(&format!("/proc/{pid}/stat"))
}

/// A number from the environment variable `name`, else `default`.
pub fn setting(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(default)
}

/// A client-credentials token request (`client_secret_post`) for `audience`, as raw HTTP.
pub fn token_request(client_id: &str, secret: &str, audience: &str) -> Bytes {
    let body = crate::form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("audience", audience),
    ]);
    Bytes::from(format!(
        "POST /oauth/token HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// What one measured stretch of load on one server gave.
#[derive(Debug, Default)]
pub struct Sample {
    /// Each measured request's latency.
    pub latencies: Vec<Duration>,
    /// Wall-clock seconds measured.
    pub seconds: f64,
    /// The server's CPU time meanwhile, in microseconds.
    pub server_cpu_us: u64,
    /// The load generator's.
    pub client_cpu_us: u64,
    /// Answers other than 200.
    pub errors: u64,
}

impl Sample {
    pub fn add(&mut self, mut other: Sample) {
        self.latencies.append(&mut other.latencies);
        self.seconds += other.seconds;
        self.server_cpu_us += other.server_cpu_us;
        self.client_cpu_us += other.client_cpu_us;
        self.errors += other.errors;
    }

    pub fn tokens_per_s(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    pub fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        self.latencies[((self.latencies.len() - 1) as f64 * p).round() as usize]
    }

    pub fn per_token(&self, micros: u64) -> f64 {
        micros as f64 / self.latencies.len().max(1) as f64
    }
}

/// Reads one HTTP/1.1 response from `stream` into `buffer`; returns whether it was a 200.
/// Enough of HTTP for this server's responses (status line, `Content-Length`, no chunking),
/// like wrk's parser: the load generator must cost the shared CPUs as little as possible.
pub async fn read_response(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt;
    buffer.clear();
    let mut expected = None;
    loop {
        if expected.is_none()
            && let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = std::str::from_utf8(&buffer[..end]).expect("ASCII head");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("Content-Length");
            expected = Some(end + 4 + length);
        }
        if let Some(total) = expected
            && buffer.len() >= total
        {
            assert_eq!(buffer.len(), total, "closed loop: one response at a time");
            return buffer.starts_with(b"HTTP/1.1 200 ");
        }
        let read = stream.read_buf(buffer).await.expect("read");
        assert!(read > 0, "server closed the connection");
    }
}

pub async fn connection_loop(
    addr: SocketAddr,
    request: Bytes,
    until: Instant,
    measure_from: Instant,
) -> (Vec<Duration>, u64) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buffer = Vec::with_capacity(8 << 10);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < until {
        let started = Instant::now();
        stream.write_all(&request).await.unwrap();
        let ok = read_response(&mut stream, &mut buffer).await;
        if started >= measure_from {
            latencies.push(started.elapsed());
            errors += u64::from(!ok);
        }
    }
    (latencies, errors)
}

/// Runs `connections` closed-loop connections to `addr` for `warmup` then `seconds`, and
/// returns what the measured part gave; `server_cpu` reads the server's CPU time (µs).
pub async fn measure(
    addr: SocketAddr,
    request: &Bytes,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
    server_cpu: &dyn Fn() -> u64,
) -> Sample {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection_loop(addr, request.clone(), until, measure_from));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = server_cpu();
    let client_tid = thread_id();
    let client_before = thread_cpu_us(client_tid);
    let wall = Instant::now();
    let mut sample = Sample::default();
    while let Some(joined) = tasks.join_next().await {
        let (mut some, failed) = joined.unwrap();
        sample.latencies.append(&mut some);
        sample.errors += failed;
    }
    sample.server_cpu_us = server_cpu() - cpu_before;
    sample.client_cpu_us = thread_cpu_us(client_tid) - client_before;
    sample.seconds = wall.elapsed().as_secs_f64();
    sample
}
