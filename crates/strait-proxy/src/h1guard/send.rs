//! The send timeout: a response the client takes no byte of for `send_timeout` is abandoned.
//! hyper then ends the connection and drops the response body, which closes (never pools) the
//! upstream connection it came from.

use std::future::Future;
use std::io;
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::H1Guard;

impl<IO> H1Guard<IO> {
    /// Passes a write result on, after noting it for parking and for the send timeout; a write
    /// blocked past the timeout becomes an error.
    pub(super) fn track_send<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        self.note_write(&result);
        self.track_blocked(cx, result)
    }

    /// [`H1Guard::track_send`] for flush and shutdown, whose success says nothing about bytes
    /// hyper still holds, so it leaves the blocked state alone.
    pub(super) fn track_flush(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        match result {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.track_blocked(cx, Poll::Pending),
        }
    }

    fn track_blocked<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => match self.poll_send_expired(cx) {
                true => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no response bytes for send_timeout",
                ))),
                false => Poll::Pending,
            },
            Poll::Ready(r) => {
                self.send_blocked = None;
                Poll::Ready(r)
            }
        }
    }

    /// Arms the send timer from the first blocked write; true once it has passed.
    fn poll_send_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let since = *self.send_blocked.get_or_insert_with(Instant::now);
        let due = since + self.limits.send_timeout;
        // Created on the first blocked write only: most connections never block.
        let timer = self
            .send_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}
