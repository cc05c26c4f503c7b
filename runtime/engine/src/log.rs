//! Bounded capture of a hook's stdout and stderr: one buffer per invocation that keeps the
//! first `max_log_bytes` and silently drops the rest (a chatty hook never fails because of
//! its logging).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a single write may hand over; the guest splits larger writes.
const WRITE_PERMIT: usize = 64 << 10;

/// Shared by stdout and stderr of one invocation, so the log keeps the order of writes.
#[derive(Debug, Clone)]
pub(crate) struct LogCapture {
    buffer: Arc<Mutex<LogBuffer>>,
}

#[derive(Debug)]
struct LogBuffer {
    bytes: Vec<u8>,
    capacity: usize,
    truncated: bool,
}

impl LogCapture {
    pub(crate) fn new(capacity: usize) -> Self {
        LogCapture {
            buffer: Arc::new(Mutex::new(LogBuffer {
                bytes: Vec::new(),
                capacity,
                truncated: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogBuffer> {
        // A poisoned lock only means another writer panicked mid-append; the bytes are fine.
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, data: &[u8]) {
        let mut buffer = self.lock();
        let room = buffer.capacity - buffer.bytes.len();
        if data.len() > room {
            buffer.truncated = true;
        }
        buffer
            .bytes
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The captured text (lossy UTF-8) and whether anything was dropped; empties the buffer
    /// for the next call of a reused instance.
    pub(crate) fn finish(&self) -> (String, bool) {
        let mut buffer = self.lock();
        let text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        let truncated = std::mem::take(&mut buffer.truncated);
        buffer.bytes.clear();
        (text, truncated)
    }
}

impl IsTerminal for LogCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogCapture {
    async fn ready(&mut self) {}
}

impl OutputStream for LogCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for LogCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_marks_truncation() {
        let log = LogCapture::new(8);
        log.append(b"hello ");
        log.append(b"world");
        assert_eq!(log.finish(), ("hello wo".to_owned(), true));
    }

    #[test]
    fn within_capacity_is_not_truncated() {
        let log = LogCapture::new(64);
        log.append(b"line\n");
        assert_eq!(log.finish(), ("line\n".to_owned(), false));
    }
}
