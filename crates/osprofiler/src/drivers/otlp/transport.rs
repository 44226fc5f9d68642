//! Sending one encoded `ExportTraceServiceRequest`: OTLP/HTTP (protobuf
//! body, `ureq`) or OTLP/gRPC (unary call over cleartext HTTP/2, `h2` on a
//! private single-thread tokio runtime).
//!
//! Both follow the OTLP specification's retry rules: a failure the
//! collector may recover from (connection errors, timeouts, HTTP 429, 502,
//! 503, 504, gRPC `UNAVAILABLE` and the other retryable codes) is an `Err`,
//! which the driver turns into an error the notifier retries; a refusal
//! (any other status) is final, and its spans are dropped and counted.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

/// Largest response body read; a real one is a few bytes.
const MAX_RESPONSE: u64 = 1024 * 1024;

/// How the collector answered an export.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Accepted, perhaps partly (`rejected_spans` of them refused).
    Accepted {
        rejected_spans: u64,
        message: String,
    },
    /// Refused for good: retrying would not help.
    Refused(String),
}

impl Outcome {
    fn from_response(body: &[u8]) -> Outcome {
        let partial = ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success);
        Outcome::Accepted {
            rejected_spans: partial
                .as_ref()
                .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
            message: partial.map(|p| p.error_message).unwrap_or_default(),
        }
    }
}

/// A retryable failure, as text.
pub(super) type Retry = String;

/// Where and how spans are sent.
#[derive(Debug)]
pub(super) enum Transport {
    Http(HttpTransport),
    #[cfg(feature = "otlp-grpc")]
    Grpc(grpc::GrpcTransport),
}

impl Transport {
    pub(super) fn export(&mut self, body: Vec<u8>) -> Result<Outcome, Retry> {
        match self {
            Transport::Http(t) => t.export(&body),
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc(t) => t.export(body),
        }
    }

    pub(super) fn set_timeout(&mut self, timeout: Duration) {
        match self {
            Transport::Http(t) => *t = HttpTransport::new(t.url.clone(), timeout),
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc(t) => t.timeout = timeout,
        }
    }
}

/// OTLP/HTTP with a protobuf body, on a keep-alive connection pool.
pub(super) struct HttpTransport {
    url: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    pub(super) fn new(url: String, timeout: Duration) -> HttpTransport {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("osprofiler-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpTransport { url, agent }
    }

    fn export(&mut self, body: &[u8]) -> Result<Outcome, Retry> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .send(body)
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        let status = response.status().as_u16();
        let reply = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .unwrap_or_default();
        match status {
            200..=299 => Ok(Outcome::from_response(&reply)),
            429 | 502 | 503 | 504 => Err(format!("POST {}: HTTP {status}", self.url)),
            _ => Ok(Outcome::Refused(format!(
                "POST {}: HTTP {status}",
                self.url
            ))),
        }
    }
}

#[cfg(feature = "otlp-grpc")]
pub(super) mod grpc {
    //! A unary gRPC call (`TraceService/Export`) over HTTP/2 without TLS.
    //!
    //! The runtime is created on first use and kept with the connection;
    //! its tasks (the connection's I/O) only run while an export waits, so
    //! an idle connection the collector closed is noticed on the next
    //! export, which then fails (retryable) and reconnects on the retry.

    use std::net::SocketAddr;
    use std::time::Duration;

    use bytes::Bytes;
    use h2::client::SendRequest;
    use http::header::{HeaderMap, CONTENT_TYPE, TE, USER_AGENT};
    use http::{Method, Request};
    use tokio::net::TcpStream;
    use tokio::runtime::Runtime;

    use super::{Outcome, Retry, MAX_RESPONSE};

    const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    /// The collector's address: a socket address, or a name resolved at
    /// each connection.
    #[derive(Debug, Clone)]
    pub(in crate::drivers::otlp) enum Target {
        Addr(SocketAddr),
        Name(String, u16),
    }

    pub(in crate::drivers::otlp) struct GrpcTransport {
        target: Target,
        uri: String,
        pub(super) timeout: Duration,
        runtime: Option<Runtime>,
        connection: Option<SendRequest<Bytes>>,
    }

    impl std::fmt::Debug for GrpcTransport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("GrpcTransport")
                .field("uri", &self.uri)
                .field("connected", &self.connection.is_some())
                .finish_non_exhaustive()
        }
    }

    impl Drop for GrpcTransport {
        fn drop(&mut self) {
            self.connection = None;
            // Dropping a runtime blocks, which tokio forbids inside another
            // runtime (the driver may be dropped from async code).
            if let Some(runtime) = self.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }

    impl GrpcTransport {
        /// `authority` is `host:port` as the `:authority` of requests.
        pub(in crate::drivers::otlp) fn new(
            target: Target,
            authority: &str,
            timeout: Duration,
        ) -> GrpcTransport {
            GrpcTransport {
                target,
                uri: format!("http://{authority}{PATH}"),
                timeout,
                runtime: None,
                connection: None,
            }
        }

        pub(super) fn export(&mut self, body: Vec<u8>) -> Result<Outcome, Retry> {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Called from async code (not the notifier's collector
                // thread): `block_on` would panic here, so wait on a
                // thread of our own.
                return std::thread::scope(|scope| {
                    scope
                        .spawn(|| self.export_blocking(body))
                        .join()
                        .unwrap_or_else(|_| Err("gRPC export thread panicked".into()))
                });
            }
            self.export_blocking(body)
        }

        fn export_blocking(&mut self, body: Vec<u8>) -> Result<Outcome, Retry> {
            let runtime = match &self.runtime {
                Some(runtime) => runtime,
                None => self.runtime.insert(
                    tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build()
                        .map_err(|e| format!("cannot start the gRPC runtime: {e}"))?,
                ),
            };
            let frame = frame(&body)?;
            let timeout = self.timeout;
            let call = call(&mut self.connection, &self.target, &self.uri, frame);
            let result = runtime.block_on(async {
                tokio::time::timeout(timeout, call)
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer in {timeout:?}")))
            });
            result.map_err(|e| format!("gRPC {}: {e}", self.uri))
        }
    }

    /// The length-prefixed message of a gRPC body (uncompressed).
    fn frame(message: &[u8]) -> Result<Bytes, Retry> {
        let len = u32::try_from(message.len()).map_err(|_| "message over 4 GiB".to_string())?;
        let mut out = Vec::with_capacity(message.len() + 5);
        out.push(0);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(message);
        Ok(Bytes::from(out))
    }

    async fn connect(target: &Target) -> Result<SendRequest<Bytes>, Retry> {
        let stream = match target {
            Target::Addr(addr) => TcpStream::connect(addr).await,
            Target::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await,
        }
        .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = h2::client::handshake(stream)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("osprofiler: OTLP gRPC connection closed: {e}");
            }
        });
        Ok(sender)
    }

    /// One `Export` call. The connection goes back into `slot` only when
    /// the call went through at the HTTP/2 level.
    async fn call(
        slot: &mut Option<SendRequest<Bytes>>,
        target: &Target,
        uri: &str,
        frame: Bytes,
    ) -> Result<Outcome, Retry> {
        let sender = match slot.take() {
            Some(sender) => sender,
            None => connect(target).await?,
        };
        let mut sender = sender
            .ready()
            .await
            .map_err(|e| format!("HTTP/2 connection: {e}"))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/grpc")
            .header(TE, "trailers")
            .header(
                USER_AGENT,
                concat!("osprofiler-rs/", env!("CARGO_PKG_VERSION")),
            )
            .body(())
            .map_err(|e| format!("bad request: {e}"))?;
        let (response, mut stream) = sender
            .send_request(request, false)
            .map_err(|e| format!("HTTP/2 request: {e}"))?;
        stream
            .send_data(frame, true)
            .map_err(|e| format!("HTTP/2 body: {e}"))?;
        let response = response
            .await
            .map_err(|e| format!("HTTP/2 response: {e}"))?;
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| format!("HTTP/2 response body: {e}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if (data.len() + chunk.len()) as u64 > MAX_RESPONSE {
                return Err("response too large".into());
            }
            data.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| format!("HTTP/2 trailers: {e}"))?
            .unwrap_or_default();
        *slot = Some(sender);
        outcome(parts.status.as_u16(), &parts.headers, &trailers, &data)
    }

    /// The call's result from the HTTP status, the `grpc-status` (in the
    /// trailers, or in the headers of a trailers-only answer) and the body.
    fn outcome(
        http_status: u16,
        headers: &HeaderMap,
        trailers: &HeaderMap,
        body: &[u8],
    ) -> Result<Outcome, Retry> {
        if http_status != 200 {
            // gRPC's mapping of HTTP statuses: these four are UNAVAILABLE.
            let text = format!("HTTP {http_status}");
            return match http_status {
                429 | 502 | 503 | 504 => Err(text),
                _ => Ok(Outcome::Refused(text)),
            };
        }
        let Some(status) = trailers
            .get("grpc-status")
            .or_else(|| headers.get("grpc-status"))
        else {
            return Ok(Outcome::Refused("answer without grpc-status".into()));
        };
        let code: u32 = status
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2);
        let message = trailers
            .get("grpc-message")
            .or_else(|| headers.get("grpc-message"))
            .and_then(|m| m.to_str().ok())
            .map(|m| {
                percent_encoding::percent_decode_str(m)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let text = format!("grpc-status {code} {message}");
        match code {
            0 => Ok(match body {
                [0, _, _, _, _, message @ ..] => Outcome::from_response(message),
                _ => Outcome::from_response(&[]),
            }),
            // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
            // UNAVAILABLE, DATA_LOSS: retryable per the OTLP spec.
            1 | 4 | 10 | 11 | 14 | 15 => Err(text),
            // RESOURCE_EXHAUSTED only when the server says when to retry.
            8 if trailers.contains_key("grpc-status-details-bin") => Err(text),
            _ => Ok(Outcome::Refused(text)),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn trailers(code: &str, message: &str) -> HeaderMap {
            let mut map = HeaderMap::new();
            map.insert("grpc-status", code.parse().unwrap());
            map.insert("grpc-message", message.parse().unwrap());
            map
        }

        #[test]
        fn statuses_follow_the_otlp_retry_rules() {
            let none = HeaderMap::new();
            assert!(matches!(
                outcome(200, &none, &trailers("0", ""), &[0, 0, 0, 0, 0]),
                Ok(Outcome::Accepted {
                    rejected_spans: 0,
                    ..
                })
            ));
            assert!(outcome(200, &none, &trailers("14", "down"), &[]).is_err());
            assert!(matches!(
                outcome(200, &none, &trailers("3", "bad%20span"), &[]),
                Ok(Outcome::Refused(text)) if text == "grpc-status 3 bad span"
            ));
            assert!(matches!(
                outcome(200, &none, &trailers("8", ""), &[]),
                Ok(Outcome::Refused(_))
            ));
            // Trailers-only answer: the status is in the headers.
            assert!(outcome(200, &trailers("14", ""), &none, &[]).is_err());
            assert!(outcome(503, &none, &none, &[]).is_err());
            assert!(matches!(
                outcome(404, &none, &none, &[]),
                Ok(Outcome::Refused(_))
            ));
            assert!(matches!(
                outcome(200, &none, &none, &[]),
                Ok(Outcome::Refused(_))
            ));
        }

        #[test]
        fn frames_are_length_prefixed() {
            assert_eq!(
                &frame(b"abc").unwrap()[..],
                &[0, 0, 0, 0, 3, b'a', b'b', b'c']
            );
        }
    }
}
