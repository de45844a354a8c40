//! The native counterpart of the `kv-http` guest for the key-value benchmark: a hyper server
//! doing what the guest does on Redis, as an ordinary native service would, so the table shows
//! what running the logic as a component costs.
//!
//! It serves the benchmark's subset of kv-http's routes on Redis keys laid out like omnia's
//! Redis backend (`bucket:key`): `GET /kv/{bucket}/{key}` (200 value / 404), `PUT
//! /kv/{bucket}/{key}` (204), `POST /incr/{bucket}/{key}` (200 new value), `GET
//! /exists/{bucket}/{key}` (200 `true`/`false`). One multiplexed Redis connection, like omnia's.
//!
//! Usage: `native-kv 127.0.0.1:8080 redis://127.0.0.1:6379`

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let redis = ConnectionManager::new(redis::Client::open(url)?).await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let redis = redis.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let redis = redis.clone();
                async move { Ok::<_, Infallible>(handle(redis, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    mut redis: ConnectionManager,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (Some(route), Some(bucket), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return reply(StatusCode::NOT_FOUND, "no route");
    };
    let key = format!("{bucket}:{key}");
    let method = req.method().clone();
    let result: redis::RedisResult<Response<Full<Bytes>>> = match (method, route) {
        (Method::GET, "kv") => {
            redis
                .get::<_, Option<Vec<u8>>>(&key)
                .await
                .map(|value| match value {
                    Some(value) => reply(StatusCode::OK, value),
                    None => reply(StatusCode::NOT_FOUND, ""),
                })
        }
        (Method::PUT, "kv") => {
            let Ok(body) = req.into_body().collect().await else {
                return reply(StatusCode::BAD_REQUEST, "body");
            };
            redis
                .set::<_, _, ()>(&key, body.to_bytes().to_vec())
                .await
                .map(|()| reply(StatusCode::NO_CONTENT, ""))
        }
        (Method::POST, "incr") => redis
            .incr::<_, _, i64>(&key, 1)
            .await
            .map(|n| reply(StatusCode::OK, n.to_string())),
        (Method::GET, "exists") => redis
            .exists::<_, bool>(&key)
            .await
            .map(|e| reply(StatusCode::OK, e.to_string())),
        _ => return reply(StatusCode::NOT_FOUND, "no route"),
    };
    result.unwrap_or_else(|err| reply(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
}
