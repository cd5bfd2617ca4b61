//! Write coalescing under the HTTP/2 server: the frames of every response that is ready in one
//! round of the scheduler leave in one socket write instead of one write each.
//!
//! Why: h2 flushes after every DATA frame it chains (any payload over 256 bytes), so each
//! response cost its own `writev`, and on loopback the sender's kernel also runs the receiver's
//! TCP path. Writes are copied into a buffer of at most [`CAP`] bytes, and flushes are put off
//! until the connection task's next poll: the task wakes itself, and tokio queues a self-woken
//! task behind the tasks already runnable, so the streams whose upstream answered in the same
//! round add their frames first. A poll of an open h2 connection reads before it flushes, so
//! a read while bytes are held marks the next flush as the one that writes. Shutdown writes
//! what is held before closing.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write waits for the socket: a batch of about 14 responses of 1 KiB;
/// a write this large on its own goes straight through.
pub(super) const CAP: usize = 16 * 1024;

/// `io` with writes held until the flush after the one that began the batch.
pub(super) struct Coalesce<IO> {
    io: IO,
    /// Held bytes; `pos` of them already written. Freed when empty, so idle connections
    /// hold no buffer.
    buf: Vec<u8>,
    pos: usize,
    /// A read came while bytes were held: the task is in a poll after the one whose flush was
    /// put off, and the next flush writes.
    due: bool,
}

impl<IO> Coalesce<IO> {
    /// Wraps `io`, holding nothing.
    pub(super) fn new(io: IO) -> Self {
        Self {
            io,
            buf: Vec::new(),
            pos: 0,
            due: false,
        }
    }

    fn held(&self) -> usize {
        self.buf.len() - self.pos
    }
}

impl<IO: AsyncWrite + Unpin> Coalesce<IO> {
    /// Writes out everything held; ready when nothing is.
    pub(super) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.buf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.buf[self.pos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.pos += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.buf = Vec::new();
        self.pos = 0;
        self.due = false;
        Poll::Ready(Ok(()))
    }

    /// Room for `len` more bytes, writing out what is held if they would not fit. `false` when
    /// nothing is held and `len` alone is a batch: the caller writes it through.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.held() + len > CAP {
            ready!(self.poll_drain(cx))?;
        }
        if len >= CAP {
            return Poll::Ready(Ok(false));
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(CAP);
        }
        Poll::Ready(Ok(true))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesce<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_room(cx, data.len()))? {
            return Pin::new(&mut this.io).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if !ready!(this.poll_room(cx, len))? {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    /// h2 chains payloads (and writes vectored) only when told the writer takes slices.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held() > 0 {
            if !this.due {
                // Again on a later flush of the same poll: a no-op for a task already woken,
                // and a poll that never reached a read goes round once more.
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalesce<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.due |= this.held() > 0;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// A socket that takes `room` bytes before it blocks, and counts its writes.
    #[derive(Default)]
    struct Socket {
        got: Vec<u8>,
        writes: usize,
        room: usize,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = data.len().min(this.room);
            if n == 0 {
                return Poll::Pending;
            }
            this.room -= n;
            this.writes += 1;
            this.got.extend_from_slice(&data[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    fn open(room: usize) -> Coalesce<Socket> {
        Coalesce::new(Socket {
            room,
            ..Socket::default()
        })
    }

    fn write(c: &mut Coalesce<Socket>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(c).poll_write(&mut Context::from_waker(Waker::noop()), data)
    }

    fn flush(c: &mut Coalesce<Socket>) -> Poll<io::Result<()>> {
        Pin::new(c).poll_flush(&mut Context::from_waker(Waker::noop()))
    }

    fn read(c: &mut Coalesce<Socket>) {
        let mut space = [0u8; 8];
        let mut buf = ReadBuf::new(&mut space);
        let got = Pin::new(c).poll_read(&mut Context::from_waker(Waker::noop()), &mut buf);
        assert!(got.is_pending());
    }

    #[test]
    fn a_batch_leaves_in_one_write_at_the_first_flush_after_a_read() {
        let mut c = open(usize::MAX);
        assert!(matches!(write(&mut c, b"one "), Poll::Ready(Ok(4))));
        assert!(flush(&mut c).is_ready(), "the first flush is put off");
        let bufs = [IoSlice::new(b"two "), IoSlice::new(b"three")];
        let n =
            Pin::new(&mut c).poll_write_vectored(&mut Context::from_waker(Waker::noop()), &bufs);
        assert!(matches!(n, Poll::Ready(Ok(9))));
        assert!(flush(&mut c).is_ready(), "the same poll: put off again");
        assert_eq!(c.io.writes, 0);
        read(&mut c);
        assert!(flush(&mut c).is_ready());
        assert_eq!(
            (c.io.writes, c.io.got.as_slice()),
            (1, &b"one two three"[..])
        );
        assert_eq!(c.buf.capacity(), 0, "an emptied buffer is given back");
        assert!(flush(&mut c).is_ready(), "nothing held: a plain flush");
        assert_eq!(c.io.writes, 1);
    }

    #[test]
    fn a_full_buffer_writes_out_first_and_a_whole_batch_goes_straight_through() {
        let mut c = open(usize::MAX);
        let part = vec![b'a'; CAP - 10];
        assert!(write(&mut c, &part).is_ready());
        assert!(write(&mut c, &[b'b'; 20]).is_ready());
        assert_eq!(c.io.writes, 1, "held bytes went out to make room");
        assert_eq!(c.held(), 20);
        let mut d = open(usize::MAX);
        assert!(matches!(write(&mut d, &vec![b'c'; CAP]), Poll::Ready(Ok(n)) if n == CAP));
        assert_eq!((d.io.writes, d.held()), (1, 0), "not copied");
    }

    #[test]
    fn a_blocked_socket_holds_at_most_cap_and_shutdown_writes_what_is_held() {
        let mut c = open(10);
        assert!(write(&mut c, &vec![b'x'; CAP - 1]).is_ready());
        assert!(
            write(&mut c, b"yy").is_pending(),
            "full, and the socket takes 10 bytes"
        );
        assert_eq!(c.io.got.len(), 10);
        c.io.room = usize::MAX;
        let shut = Pin::new(&mut c).poll_shutdown(&mut Context::from_waker(Waker::noop()));
        assert!(shut.is_ready());
        assert_eq!((c.io.got.len(), c.held()), (CAP - 1, 0));
    }
}
