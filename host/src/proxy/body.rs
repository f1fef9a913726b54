//! A forwarded response body with faults applied as it streams: truncate
//! (end after N bytes with an error, so the client sees a body cut short,
//! whether framed by `content-length` or chunked), corrupt (flip bytes at
//! positions drawn from the seed, changing chunks in place: with a known
//! length nothing is buffered; without one, the first 64 KiB (or less, if
//! the body is shorter) are held to learn the span positions are drawn
//! from) and throttle (N bytes per second in small chunks;
//! a stop ends the throttling).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::proxy::seed::{self, Corruption};

/// Errors of a proxied body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most a body of unknown length is held to draw corrupt positions in.
pub const CORRUPT_WINDOW_UNKNOWN_LENGTH: u64 = 64 * 1024;

/// How long a truncated body waits, after its last byte, before it ends
/// with an error: hyper drops what it has not written yet when a body
/// fails, so the bytes before the cut are flushed first.
const TRUNCATION_FLUSH: Duration = Duration::from_millis(50);

/// Largest piece a throttled body sends at once.
const MAX_THROTTLE_CHUNK: u64 = 16 * 1024;

/// The error that ends a truncated body (the client's connection is
/// closed before the body is complete).
#[derive(Debug, thiserror::Error)]
#[error("response body truncated after {after} bytes by a fault")]
pub struct Truncated {
    pub after: u64,
}

/// What to do to a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFaultPlan {
    pub truncate_after: Option<u64>,
    /// Sorted, distinct positions (drawn at once when the length is
    /// known).
    pub corruptions: Vec<Corruption>,
    /// Corruption to draw once the start of a body of unknown length is
    /// held.
    pub corrupt_later: Option<DeferredCorruption>,
    pub throttle_bytes_per_second: Option<u32>,
}

/// The draw of corrupt positions in a body of unknown length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeferredCorruption {
    pub seed: u64,
    pub sequence: u64,
    pub count: u32,
}

impl BodyFaultPlan {
    /// The plan for request `sequence`: corrupt positions drawn within the
    /// body's known length (and before a truncation), or, when the length
    /// is unknown, within the first 64 KiB of the body as it comes.
    pub fn new(
        seed: u64,
        sequence: u64,
        faults: &crate::runtime::inject::BodyFaults,
        content_length: Option<u64>,
    ) -> BodyFaultPlan {
        let (corruptions, corrupt_later) = match (faults.corrupt_bytes, content_length) {
            (Some(count), Some(length)) if count > 0 => {
                let span = faults
                    .truncate_after_bytes
                    .map_or(length, |limit| length.min(limit));
                (seed::corrupt_positions(seed, sequence, count, span), None)
            }
            (Some(count), None) if count > 0 => (
                Vec::new(),
                Some(DeferredCorruption {
                    seed,
                    sequence,
                    count,
                }),
            ),
            _ => (Vec::new(), None),
        };
        BodyFaultPlan {
            truncate_after: faults.truncate_after_bytes,
            corruptions,
            corrupt_later,
            throttle_bytes_per_second: faults.throttle_bytes_per_second.filter(|bps| *bps > 0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.truncate_after.is_none()
            && self.corruptions.is_empty()
            && self.corrupt_later.is_none()
            && self.throttle_bytes_per_second.is_none()
    }
}

type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Throttle {
    bytes_per_second: u64,
    chunk: u64,
    started: Option<Instant>,
    sent: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A body with faults applied.
pub struct FaultedBody<B> {
    inner: B,
    truncate_after: Option<u64>,
    corruptions: VecDeque<Corruption>,
    throttle: Option<Throttle>,
    /// Resolves when the experiment stops: throttling ends.
    stop: Option<StopFuture>,
    pending: Option<Bytes>,
    position: u64,
    done: bool,
    /// Set once the truncation point is passed: the error comes when it
    /// fires.
    cut: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Holding the start of a body of unknown length.
    collecting: Option<Collecting>,
    /// A frame that came while collecting, sent after the held bytes.
    deferred_frame: Option<Frame<Bytes>>,
}

struct Collecting {
    plan: DeferredCorruption,
    held: BytesMut,
    /// A non-data frame (trailers) that ended the collection.
    after: Option<Frame<Bytes>>,
}

impl<B> FaultedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    pub fn new(inner: B, plan: BodyFaultPlan, stop: Option<StopFuture>) -> FaultedBody<B> {
        let throttle = plan.throttle_bytes_per_second.map(|bps| {
            let bps = u64::from(bps);
            Throttle {
                bytes_per_second: bps,
                chunk: (bps / 10).clamp(1, MAX_THROTTLE_CHUNK),
                started: None,
                sent: 0,
                sleep: None,
            }
        });
        FaultedBody {
            inner,
            truncate_after: plan.truncate_after,
            corruptions: plan.corruptions.into(),
            throttle,
            stop,
            pending: None,
            position: 0,
            done: false,
            cut: None,
            collecting: plan.corrupt_later.map(|plan| Collecting {
                plan,
                held: BytesMut::new(),
                after: None,
            }),
            deferred_frame: None,
        }
    }

    /// Holds the start of a body of unknown length (up to 64 KiB, the
    /// truncation point, or its end), then draws the corrupt positions
    /// within what it holds.
    fn poll_collect(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let Some(collecting) = &mut self.collecting else {
            return Poll::Ready(Ok(()));
        };
        let window = self
            .truncate_after
            .map_or(CORRUPT_WINDOW_UNKNOWN_LENGTH, |limit| {
                limit.min(CORRUPT_WINDOW_UNKNOWN_LENGTH)
            });
        while (collecting.held.len() as u64) < window && collecting.after.is_none() {
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                None => break,
                Some(Err(err)) => {
                    self.collecting = None;
                    return Poll::Ready(Err(err.into()));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => collecting.held.extend_from_slice(&data),
                    Err(frame) => collecting.after = Some(frame),
                },
            }
        }
        let span = (collecting.held.len() as u64).min(window);
        let plan = collecting.plan;
        self.corruptions =
            seed::corrupt_positions(plan.seed, plan.sequence, plan.count, span).into();
        let held = std::mem::take(&mut collecting.held).freeze();
        let after = collecting.after.take();
        self.collecting = None;
        if !held.is_empty() {
            self.pending = Some(held);
        }
        self.deferred_frame = after;
        Poll::Ready(Ok(()))
    }

    /// Next data chunk (or a non-data frame, or the end) from the inner
    /// body.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(pending) = self.pending.take() {
            return Poll::Ready(Some(Ok(Frame::data(pending))));
        }
        if let Some(frame) = self.deferred_frame.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => Poll::Ready(None),
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
        }
    }

    /// Whether throttling must wait before sending; sets the timer.
    fn throttle_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(stop) = &mut self.stop
            && stop.as_mut().poll(cx).is_ready()
        {
            self.stop = None;
            self.throttle = None;
        }
        let Some(throttle) = &mut self.throttle else {
            return Poll::Ready(());
        };
        let now = Instant::now();
        let started = *throttle.started.get_or_insert(now);
        let due = started
            + Duration::from_secs_f64(throttle.sent as f64 / throttle.bytes_per_second as f64);
        if due <= now {
            throttle.sleep = None;
            return Poll::Ready(());
        }
        let deadline = tokio::time::Instant::from_std(due);
        let sleep = throttle
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                throttle.sleep = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Flips the bytes of `chunk` (which starts at `self.position`) that
    /// are due.
    fn corrupt(&mut self, chunk: Bytes) -> Bytes {
        let start = self.position;
        let end = start + chunk.len() as u64;
        if self.corruptions.front().is_none_or(|c| c.position >= end) {
            return chunk;
        }
        let mut bytes = BytesMut::from(chunk.as_ref());
        while let Some(corruption) = self.corruptions.front() {
            if corruption.position >= end {
                break;
            }
            if corruption.position >= start {
                let index = (corruption.position - start) as usize;
                bytes[index] ^= corruption.mask;
            }
            self.corruptions.pop_front();
        }
        bytes.freeze()
    }
}

impl<B> Body for FaultedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(cut) = &mut this.cut {
                ready!(cut.as_mut().poll(cx));
                this.done = true;
                let after = this.truncate_after.unwrap_or(this.position);
                return Poll::Ready(Some(Err(Box::new(Truncated { after }))));
            }
            if let Err(err) = ready!(this.poll_collect(cx)) {
                this.done = true;
                return Poll::Ready(Some(Err(err)));
            }
            // Throttle before taking more from the upstream, so a throttled
            // body does not read ahead of what it sends.
            ready!(this.throttle_wait(cx));
            let frame = match ready!(this.poll_inner(cx)) {
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Err(err)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Some(Ok(frame)) => frame,
            };
            let mut chunk = match frame.into_data() {
                Ok(chunk) => chunk,
                // Trailers pass untouched (unless the body was truncated).
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            if chunk.is_empty() {
                continue;
            }
            if let Some(limit) = this.truncate_after {
                let remaining = limit.saturating_sub(this.position);
                if remaining == 0 {
                    this.pending = None;
                    this.cut = Some(Box::pin(tokio::time::sleep(TRUNCATION_FLUSH)));
                    continue;
                }
                if chunk.len() as u64 > remaining {
                    // What passes the limit is never sent; the next poll
                    // ends the body with the truncation error.
                    this.pending = Some(chunk.split_off(remaining as usize));
                }
            }
            if let Some(throttle) = &mut this.throttle
                && chunk.len() as u64 > throttle.chunk
            {
                let rest = chunk.split_off(throttle.chunk as usize);
                this.pending = Some(match this.pending.take() {
                    // Only possible with truncation: `rest` comes first.
                    Some(after) => {
                        let mut joined = BytesMut::from(rest.as_ref());
                        joined.extend_from_slice(&after);
                        joined.freeze()
                    }
                    None => rest,
                });
            }
            let chunk = this.corrupt(chunk);
            this.position += chunk.len() as u64;
            if let Some(throttle) = &mut this.throttle {
                throttle.sent += chunk.len() as u64;
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
            || (self.pending.is_none()
                && self.deferred_frame.is_none()
                && self.collecting.is_none()
                && self.cut.is_none()
                && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // The length the upstream announced: a truncated body falls short
        // of it, as a client would see on the wire.
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// A body of several chunks.
    struct Chunks(VecDeque<Bytes>);

    impl Chunks {
        fn new(parts: &[&[u8]]) -> Chunks {
            Chunks(parts.iter().map(|p| Bytes::copy_from_slice(p)).collect())
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    async fn collect<B>(body: B) -> (Vec<u8>, Option<String>)
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let mut body = body;
        let mut out = Vec::new();
        loop {
            match body.frame().await {
                None => return (out, None),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        out.extend_from_slice(&data);
                    }
                }
                Some(Err(err)) => return (out, Some(err.to_string())),
            }
        }
    }

    fn plan(
        truncate: Option<u64>,
        corrupt: Vec<(u64, u8)>,
        throttle: Option<u32>,
    ) -> BodyFaultPlan {
        BodyFaultPlan {
            truncate_after: truncate,
            corruptions: corrupt
                .into_iter()
                .map(|(position, mask)| Corruption { position, mask })
                .collect(),
            corrupt_later: None,
            throttle_bytes_per_second: throttle,
        }
    }

    #[tokio::test]
    async fn truncation_ends_the_body_with_an_error_after_n_bytes() {
        let body = FaultedBody::new(
            Full::new(Bytes::from_static(b"0123456789")),
            plan(Some(4), vec![], None),
            None,
        );
        let (data, err) = collect(body).await;
        assert_eq!(data, b"0123");
        assert!(err.unwrap().contains("truncated after 4 bytes"));
        // A limit at or past the body's length leaves it whole.
        let body = FaultedBody::new(
            Full::new(Bytes::from_static(b"0123")),
            plan(Some(4), vec![], None),
            None,
        );
        assert_eq!(collect(body).await, (b"0123".to_vec(), None));
    }

    #[tokio::test]
    async fn corruption_flips_exactly_the_planned_bytes() {
        let original = b"abcdefghij".to_vec();
        let body = FaultedBody::new(
            Full::new(Bytes::from(original.clone())),
            plan(None, vec![(0, 0xff), (5, 0x01), (9, 0x20)], None),
            None,
        );
        let (data, err) = collect(body).await;
        assert_eq!(err, None);
        let diff: Vec<usize> = (0..10).filter(|&i| data[i] != original[i]).collect();
        assert_eq!(diff, [0, 5, 9]);
        assert_eq!(data[0], b'a' ^ 0xff);
        assert_eq!(data[9], b'J');
    }

    #[tokio::test]
    async fn faults_apply_across_chunk_boundaries() {
        let body = FaultedBody::new(
            Chunks::new(&[b"abc", b"def", b"ghi"]),
            plan(
                Some(7),
                vec![(2, 0x20), (3, 0x20), (6, 0x20), (8, 0x20)],
                None,
            ),
            None,
        );
        let (data, err) = collect(body).await;
        assert_eq!(data, b"abCDefG");
        assert!(err.is_some());
        let body = FaultedBody::new(
            Chunks::new(&[b"abc", b"", b"def"]),
            plan(None, vec![], Some(1_000_000)),
            None,
        );
        assert_eq!(collect(body).await, (b"abcdef".to_vec(), None));
    }

    fn deferred(count: u32) -> BodyFaultPlan {
        BodyFaultPlan {
            corrupt_later: Some(DeferredCorruption {
                seed: 9,
                sequence: 4,
                count,
            }),
            ..BodyFaultPlan::default()
        }
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_corrupted_within_what_it_has() {
        let original = b"abcdefgh".to_vec();
        let (data, err) = collect(FaultedBody::new(
            Chunks::new(&[b"abc", b"def", b"gh"]),
            deferred(3),
            None,
        ))
        .await;
        assert_eq!(err, None);
        let flipped: Vec<usize> = (0..8).filter(|&i| data[i] != original[i]).collect();
        assert_eq!(flipped.len(), 3);
        // The same draw again: the same bytes.
        let (again, _) = collect(FaultedBody::new(
            Chunks::new(&[b"abcdefgh"]),
            deferred(3),
            None,
        ))
        .await;
        assert_eq!(again, data);
        let (all, _) = collect(FaultedBody::new(
            Chunks::new(&[b"abc", b"defgh"]),
            deferred(100),
            None,
        ))
        .await;
        assert!((0..8).all(|i| all[i] != original[i]));
        // A long body: only its first 64 KiB are held and corrupted.
        let big = vec![0u8; 40 * 1024];
        let parts: Vec<&[u8]> = vec![&big, &big, &big];
        let (data, err) = collect(FaultedBody::new(Chunks::new(&parts), deferred(50), None)).await;
        assert_eq!((data.len(), err), (120 * 1024, None));
        let positions: Vec<usize> = (0..data.len()).filter(|&i| data[i] != 0).collect();
        assert_eq!(positions.len(), 50);
        assert!(
            positions
                .iter()
                .all(|&p| (p as u64) < CORRUPT_WINDOW_UNKNOWN_LENGTH)
        );
    }

    #[tokio::test]
    async fn throttling_paces_the_body() {
        // 1000 bytes at 4000 B/s: pieces of 400 bytes, due at 0, 100 and
        // 200 ms: about 200 ms in all.
        let body = FaultedBody::new(
            Full::new(Bytes::from(vec![7u8; 1000])),
            plan(None, vec![], Some(4000)),
            None,
        );
        let started = Instant::now();
        let (data, err) = collect(body).await;
        let elapsed = started.elapsed();
        assert_eq!((data.len(), err), (1000, None));
        assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_stop_ends_throttling() {
        let stop: StopFuture = Box::pin(tokio::time::sleep(Duration::from_millis(50)));
        let body = FaultedBody::new(
            Full::new(Bytes::from(vec![7u8; 100])),
            plan(None, vec![], Some(10)),
            Some(stop),
        );
        let started = Instant::now();
        let (data, _) = collect(body).await;
        assert_eq!(data.len(), 100);
        assert!(started.elapsed() < Duration::from_millis(1000));
    }

    #[test]
    fn corrupt_positions_stay_within_the_known_length_or_truncation() {
        let faults = crate::runtime::inject::BodyFaults {
            corrupt_bytes: Some(5),
            truncate_after_bytes: Some(8),
            ..Default::default()
        };
        let p = BodyFaultPlan::new(1, 2, &faults, Some(100));
        assert_eq!(p.corruptions.len(), 5);
        assert!(p.corruptions.iter().all(|c| c.position < 8));
        let faults = crate::runtime::inject::BodyFaults {
            corrupt_bytes: Some(3),
            ..Default::default()
        };
        let p = BodyFaultPlan::new(1, 2, &faults, None);
        assert!(p.corruptions.is_empty() && p.corrupt_later.is_some());
        assert!(
            p.corruptions
                .iter()
                .all(|c| c.position < CORRUPT_WINDOW_UNKNOWN_LENGTH)
        );
        assert_eq!(
            BodyFaultPlan::new(1, 2, &faults, Some(2)).corruptions.len(),
            2
        );
    }
}
