//! Messages that go out together in one frame: the one just received and those already
//! waiting right behind it.

use std::time::Instant;

use crate::chat::{Event, Frame, MAX_FRAGMENT};
use async_broadcast::RecvError;

/// The most messages sent in one frame.
pub(super) const BATCH_MAX: usize = 16;

/// Messages that go out together: the one just received and those already waiting right
/// behind it (a socket that fell behind, a burst in the room). One frame and one write for
/// all of them instead of one each; the write is most of a delivery's cost. A lone message
/// (the usual case) is sent as the shared frame itself, without a copy, and over a WebSocket
/// as the shared wire bytes encoded once for every socket.
pub(super) struct Batch {
    first: Frame,
    joined: Option<String>,
    /// The newest seq in the batch.
    pub(super) last_seq: i64,
    committed: [Option<Instant>; BATCH_MAX],
    len: usize,
}

impl Batch {
    pub(super) fn new(frame: Frame, seq: i64, committed: Instant) -> Self {
        let mut batch = Batch {
            first: frame,
            joined: None,
            last_seq: seq,
            committed: [None; BATCH_MAX],
            len: 1,
        };
        batch.committed[0] = Some(committed);
        batch
    }

    fn size(&self) -> usize {
        self.joined
            .as_ref()
            .map_or(self.first.html().len(), String::len)
    }

    /// Takes the new messages waiting in `rx` that directly follow the batch, while the whole
    /// fits in one frame (a change goes out on its own: a streamed page reloads for it). Returns the first event that does not belong (it must be handled
    /// next, not lost).
    pub(super) fn gather(
        &mut self,
        rx: &mut async_broadcast::Receiver<Event>,
    ) -> Option<Result<Event, RecvError>> {
        use async_broadcast::TryRecvError;
        while self.len < BATCH_MAX {
            let event = match rx.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Overflowed(n)) => return Some(Err(RecvError::Overflowed(n))),
                Err(TryRecvError::Closed) => return Some(Err(RecvError::Closed)),
            };
            match event {
                Event::Message { seq, .. } if seq <= self.last_seq => continue,
                Event::Message {
                    seq,
                    frame,
                    committed,
                    change: false,
                } if seq == self.last_seq + 1
                    && self.size() + frame.html().len() <= MAX_FRAGMENT =>
                {
                    let joined = self.joined.get_or_insert_with(|| {
                        let mut joined = String::with_capacity(MAX_FRAGMENT);
                        joined.push_str(self.first.html().as_str());
                        joined
                    });
                    joined.push_str(frame.html().as_str());
                    self.last_seq = seq;
                    self.committed[self.len] = Some(committed);
                    self.len += 1;
                }
                other => return Some(Ok(other)),
            }
        }
        None
    }

    pub(super) fn frame(&mut self) -> Frame {
        match self.joined.take() {
            Some(joined) => Frame::from(joined),
            None => self.first.clone(),
        }
    }

    pub(super) fn committed(&self) -> impl Iterator<Item = Instant> + '_ {
        self.committed.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;

    fn message(seq: i64, text: &str) -> Event {
        Event::Message {
            seq,
            frame: Frame::shared(Utf8Bytes::from(format!("<{seq}:{text}>"))),
            committed: Instant::now(),
            change: false,
        }
    }

    fn channel() -> (
        async_broadcast::Sender<Event>,
        async_broadcast::Receiver<Event>,
    ) {
        let (mut tx, rx) = async_broadcast::broadcast(64);
        tx.set_overflow(true);
        (tx, rx)
    }

    fn batch_of(seq: i64, text: &str) -> Batch {
        let Event::Message { frame, .. } = message(seq, text) else {
            unreachable!()
        };
        Batch::new(frame, seq, Instant::now())
    }

    #[test]
    fn a_lone_message_goes_out_as_the_shared_frame() {
        let (_tx, mut rx) = channel();
        let mut batch = batch_of(1, "a");
        assert!(batch.gather(&mut rx).is_none());
        assert_eq!(batch.frame().html().as_str(), "<1:a>");
        assert_eq!((batch.last_seq, batch.committed().count()), (1, 1));
    }

    #[test]
    fn waiting_messages_join_in_order_skipping_repeats_up_to_the_batch_limit() {
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(1, "again")).unwrap();
        for seq in 2..=20 {
            tx.try_broadcast(message(seq, "m")).unwrap();
        }
        let mut batch = batch_of(1, "a");
        assert!(batch.gather(&mut rx).is_none());
        assert_eq!(batch.last_seq, BATCH_MAX as i64);
        assert_eq!(batch.committed().count(), BATCH_MAX);
        let expected: String = std::iter::once("<1:a>".to_string())
            .chain((2..=BATCH_MAX).map(|s| format!("<{s}:m>")))
            .collect();
        assert_eq!(batch.frame().html().as_str(), expected);
        // The rest stay queued for the next round.
        assert!(matches!(rx.try_recv(), Ok(Event::Message { seq: 17, .. })));
    }

    #[test]
    fn what_does_not_belong_is_handed_back_not_lost() {
        // A member-list change.
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(2, "m")).unwrap();
        tx.try_broadcast(Event::Members {
            frame: Frame::shared(Utf8Bytes::from_static("<members>")),
        })
        .unwrap();
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Ok(Event::Members { .. }))
        ));
        assert_eq!(batch.frame().html().as_str(), "<1:a><2:m>");

        // A gap: filled from the store before that message is sent.
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(3, "m")).unwrap();
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Ok(Event::Message { seq: 3, .. }))
        ));
        assert_eq!(batch.last_seq, 1);

        // A message that would make the frame too big.
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(2, &"x".repeat(MAX_FRAGMENT - 5)))
            .unwrap();
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Ok(Event::Message { seq: 2, .. }))
        ));
        assert_eq!(batch.frame().html().as_str(), "<1:a>");

        // The queue overflowed: the caller resyncs.
        let (mut tx, mut rx) = async_broadcast::broadcast(2);
        tx.set_overflow(true);
        for seq in 2..=5 {
            tx.try_broadcast(message(seq, "m")).unwrap();
        }
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Err(RecvError::Overflowed(2)))
        ));
    }
}
