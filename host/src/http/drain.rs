//! The drain of unread request bodies: a response ready before its request's body was read (a
//! refusal by the Origin guard, the session extractor or a handler) waits until the rest of the
//! body has arrived and been discarded, so that the client receives the response.
//!
//! Why: when a service drops a request body that is still arriving, hyper reads what is already
//! buffered and otherwise gives up on the connection (`Conn::poll_drain_or_close_read`): it
//! writes the response, then closes. A TCP socket closed with unread data sends a RST rather
//! than a FIN, so a client still sending its body sees EPIPE or ECONNRESET, and may lose the
//! response it had already received (Node's `fetch` rejects). Reading the rest and discarding
//! it, as nginx does when it answers before reading a body (`ngx_http_discard_request_body`),
//! lets hyper keep the connection; the client reads the response once it has finished sending.
//!
//! Bounded: at most the largest body any route accepts, for at most [`DRAIN_TIME`]. Sent at
//! once instead: a 413 (the limit was reached, the client is told to stop), a response to a
//! request that declares a longer body, and one to a request still waiting for
//! `100 Continue` (its body was never sent).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// The longest a response waits for the rest of its request's body.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Middleware: run the request, then drain what it left of the body (up to `limit` bytes in
/// all) before answering. Requests without a body pass untouched.
pub async fn drain_unread_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expects_continue =
        req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = req.body().size_hint().upper();
    let (give_back, mut unread) = oneshot::channel();
    let req = req.map(|inner| {
        Body::new(Reclaimable { inner: Some(inner), read: 0, polled: false, ended: false, give_back: Some(give_back) })
    });
    let response = next.run(req).await;

    // Nothing comes back when the body was read to its end (or is still held somewhere).
    let Ok(mut rest) = unread.try_recv() else { return response };
    let too_long = declared.is_some_and(|len| len > limit as u64);
    let never_sent = expects_continue && !rest.polled;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE || too_long || never_sent {
        return response;
    }
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        while rest.read <= limit {
            match std::future::poll_fn(|cx| Pin::new(&mut rest.body).poll_frame(cx)).await {
                Some(Ok(frame)) => rest.read += frame.data_ref().map_or(0, Bytes::len),
                // The end, or the client went away: either way there is nothing left to wait for.
                None | Some(Err(_)) => return true,
            }
        }
        false
    })
    .await;
    if drained != Ok(true) {
        tracing::debug!(read = rest.read, "answering before the end of an unread request body");
    }
    response
}

/// What a service left of a request body.
struct Unread {
    body: Body,
    /// Bytes read so far, by the service and by the drain.
    read: usize,
    /// Whether the service asked for the body at all (which sends `100 Continue`).
    polled: bool,
}

/// A request body that, dropped before its end, gives what is left back to the middleware.
struct Reclaimable {
    inner: Option<Body>,
    read: usize,
    polled: bool,
    /// Tracked here: hyper's chunked bodies never report `is_end_stream`.
    ended: bool,
    give_back: Option<oneshot::Sender<Unread>>,
}

impl HttpBody for Reclaimable {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        this.polled = true;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => this.read += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) => {}
            None => this.ended = true,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Reclaimable {
    fn drop(&mut self) {
        if self.is_end_stream() {
            return;
        }
        if let (Some(body), Some(give_back)) = (self.inner.take(), self.give_back.take()) {
            // The middleware may be gone (its future dropped): then so is the connection.
            let _ = give_back.send(Unread { body, read: self.read, polled: self.polled });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::middleware;
    use axum::routing::put;
    use tower::Service;

    use super::*;

    const CHUNK: usize = 1024;

    /// `left` chunks of 1 KiB, counting how many were read; chunked unless `declared`.
    struct Chunks {
        left: usize,
        declared: bool,
        read: Arc<AtomicUsize>,
    }

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.read.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0; CHUNK])))))
        }

        fn is_end_stream(&self) -> bool {
            self.left == 0
        }

        fn size_hint(&self) -> SizeHint {
            if self.declared { SizeHint::with_exact((self.left * CHUNK) as u64) } else { SizeHint::default() }
        }
    }

    /// How many of `chunks` chunks were read when a handler answering `status` without reading
    /// the body returned through the drain with `limit`.
    async fn chunks_read(status: StatusCode, limit: usize, chunks: usize, declared: bool, expect: bool) -> usize {
        let mut app = Router::new()
            .route("/", put(move || async move { status }))
            .layer(middleware::from_fn_with_state(limit, drain_unread_body));
        let read = Arc::new(AtomicUsize::new(0));
        let mut request = Request::put("/");
        if expect {
            request = request.header(header::EXPECT, "100-continue");
        }
        let body = Body::new(Chunks { left: chunks, declared, read: Arc::clone(&read) });
        let response = app.call(request.body(body).unwrap()).await.unwrap();
        assert_eq!(response.status(), status);
        read.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_refused_body_is_read_to_its_end_before_the_answer() {
        assert_eq!(chunks_read(StatusCode::FORBIDDEN, 1 << 20, 100, true, false).await, 100);
        assert_eq!(chunks_read(StatusCode::UNAUTHORIZED, 1 << 20, 100, false, false).await, 100);
    }

    #[tokio::test]
    async fn the_drain_is_bounded() {
        // 413: the client is told to stop.
        assert_eq!(chunks_read(StatusCode::PAYLOAD_TOO_LARGE, 1 << 20, 100, true, false).await, 0);
        // Declared longer than the bound: not worth reading.
        assert_eq!(chunks_read(StatusCode::FORBIDDEN, 10 * CHUNK, 100, true, false).await, 0);
        // Undeclared (chunked): read until past the bound, then answered.
        assert_eq!(chunks_read(StatusCode::FORBIDDEN, 10 * CHUNK, 100, false, false).await, 11);
        // Waiting for `100 Continue`, never asked: the body was never sent.
        assert_eq!(chunks_read(StatusCode::UNAUTHORIZED, 1 << 20, 100, true, true).await, 0);
    }
}
