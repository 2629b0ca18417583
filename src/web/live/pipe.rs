//! The response body of a streamed feed (the streamed room, the event stream): what the feed's
//! task writes goes through a channel of one into the body hyper sends.

use std::time::Duration;

use bytes::Bytes;
use poem::Body;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use super::feed::End;

/// A reader that cannot take a piece for this long is dropped (its page reloads or reconnects
/// and resumes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The feed's end of a streamed body.
pub(super) struct Pipe {
    tx: mpsc::Sender<Bytes>,
}

/// A body that begins with `start` and goes on with what is written to the `Pipe`; it ends
/// when the pipe is dropped.
pub(super) fn pipe<I>(start: I) -> (Pipe, Body)
where
    I: IntoIterator<Item = Bytes>,
    I::IntoIter: Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    let body = tokio_stream::iter(start)
        .chain(ReceiverStream::new(rx))
        .map(Ok::<_, std::io::Error>);
    (Pipe { tx }, Body::from_bytes_stream(body))
}

impl Pipe {
    /// Writes one piece, unless the reader went away or took nothing for `WRITE_TIMEOUT`.
    pub(super) async fn write(&mut self, piece: Bytes) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.tx.send(piece)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                tracing::debug!("a stream's reader took nothing for 10 s; ending it");
                Err(End::Gone)
            }
        }
    }

    /// Completes when the reader went away (hyper dropped the body): nothing else comes from it.
    pub(super) async fn gone(&self) -> End {
        self.tx.closed().await;
        End::Gone
    }
}
