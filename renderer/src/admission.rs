//! The concurrency limit on page renders (`limits.max_concurrent_renders`), as a tower
//! layer in front of the page handler: past the limit a request is shed at once (503,
//! `Retry-After: 1`, `no-store`) rather than queued until it times out; the CDN then
//! serves its stale copy. [`crate::mode`] reads the places taken and the requests shed
//! as signals.
//!
//! Not `tower::limit::ConcurrencyLimit` + `LoadShed`: those give a place back when the
//! handler's future ends, and a streamed page is still rendering then. Here a streamed
//! body holds its place until its last chunk has gone (or the client has gone).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::{Body, HttpBody as _};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tower::{Layer, Service};

/// Places for renders, and the requests refused one since the mode last looked.
pub struct Admission {
    in_flight: AtomicUsize,
    max: usize,
    shed: AtomicU64,
}

impl Admission {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            max,
            shed: AtomicU64::new(0),
        })
    }

    /// A place for one render, or `None` when all are taken.
    pub fn try_enter(self: &Arc<Self>) -> Option<AdmissionGuard> {
        let mut n = self.in_flight.load(Ordering::Relaxed);
        loop {
            if n >= self.max {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                n,
                n + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(AdmissionGuard(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The limit: places there are.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Count a request shed for want of a place.
    pub fn record_shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!("oberon_renderer_shed_total").increment(1);
    }

    /// The requests shed since the last call.
    pub fn take_shed(&self) -> u64 {
        self.shed.swap(0, Ordering::Relaxed)
    }

    /// The layer that admits requests to the service it wraps, or sheds them.
    pub fn layer(self: &Arc<Self>) -> AdmissionLayer {
        AdmissionLayer {
            admission: self.clone(),
        }
    }
}

/// Holds one render's place; gives it back when dropped.
pub struct AdmissionGuard(Arc<Admission>);

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// See [`Admission::layer`].
#[derive(Clone)]
pub struct AdmissionLayer {
    admission: Arc<Admission>,
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

/// A service behind the render limit (see [`Admission::layer`]).
#[derive(Clone)]
pub struct AdmissionService<S> {
    inner: S,
    admission: Arc<Admission>,
}

impl<S> Service<Request<Body>> for AdmissionService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AdmissionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(place) = self.admission.try_enter() else {
            self.admission.record_shed();
            return AdmissionFuture::Shed;
        };
        AdmissionFuture::Admitted {
            answer: self.inner.call(request),
            place: Some(place),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of an [`AdmissionService`]: shed at once, or the inner service's
    /// answer holding the place it was admitted to. Not boxed: it is on every page's
    /// path.
    #[project = AdmissionProjection]
    pub enum AdmissionFuture<F> {
        Shed,
        Admitted { #[pin] answer: F, place: Option<AdmissionGuard> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for AdmissionFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmissionProjection::Shed => Poll::Ready(Ok(shed())),
            AdmissionProjection::Admitted { answer, place } => {
                let response = ready!(answer.poll(cx))?;
                let place = place.take().expect("polled after completion");
                Poll::Ready(Ok(hold_while_rendering(response, place)))
            }
        }
    }
}

/// The answer to a request shed: quick, so the CDN serves its stale copy, and never
/// stored.
fn shed() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded, try again shortly\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `response`, holding `place` while its page still renders. A body of known size is
/// whole: its render is over, so the place is given back now. Any other is a streamed
/// page, which holds its place until its last chunk has gone or the body is dropped.
fn hold_while_rendering(response: Response, place: AdmissionGuard) -> Response {
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _holds = &place;
            chunk
        }))
    })
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    /// A page service answering a whole body, or a body streamed in two chunks.
    fn pages(
        streamed: bool,
    ) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone {
        tower::service_fn(move |_: Request<Body>| async move {
            let body = if streamed {
                let chunks = ["a", "b"].map(|c| Ok::<_, Infallible>(bytes::Bytes::from(c)));
                Body::from_stream(futures::stream::iter(chunks))
            } else {
                Body::from("whole")
            };
            Ok(Response::new(body))
        })
    }

    fn request() -> Request<Body> {
        Request::new(Body::empty())
    }

    #[tokio::test]
    async fn a_whole_page_gives_its_place_back_with_its_answer() {
        let admission = Admission::new(1);
        let service = admission.layer().layer(pages(false));
        let response = service.oneshot(request()).await.expect("infallible");
        assert_eq!(admission.in_flight(), 0);
        let body = axum::body::to_bytes(response.into_body(), 64).await;
        assert_eq!(body.expect("body"), "whole");
    }

    #[tokio::test]
    async fn a_streamed_page_holds_its_place_until_its_body_ends() {
        let admission = Admission::new(1);
        let service = admission.layer().layer(pages(true));
        let response = service
            .clone()
            .oneshot(request())
            .await
            .expect("infallible");
        assert_eq!(admission.in_flight(), 1, "the stream still renders");

        let shed = service.oneshot(request()).await.expect("infallible");
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        assert_eq!(shed.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(admission.take_shed(), 1);
        assert_eq!(
            admission.take_shed(),
            0,
            "counted once, since the last look"
        );

        let body = axum::body::to_bytes(response.into_body(), 64).await;
        assert_eq!(body.expect("body"), "ab");
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn admission_sheds_past_the_limit_and_gives_places_back() {
        let admission = Admission::new(2);
        let a = admission.try_enter().expect("first");
        let b = admission.try_enter().expect("second");
        assert!(admission.try_enter().is_none());
        assert_eq!(admission.in_flight(), 2);
        drop(a);
        let _c = admission.try_enter().expect("a place was given back");
        drop(b);
        assert_eq!(admission.in_flight(), 1);
    }
}
