//! Attacks too long for CI (a minute or more each): `tests/slow` runs them, on a release build
//! (`OMNIA_BIN=target/release/omnia`), with `--ignored --nocapture` so their tables are shown.
//! Each one attacks a server running with its defaults while a loop of good requests from
//! another client counts how many are still served.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use omnia_tests::{Omnia, get, guests, omnia};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// How long each attack runs: past `OMNIA_REQUEST_TIMEOUT` (30 s), so the slots the attackers
/// hold are seen coming back.
const ATTACK: Duration = Duration::from_secs(40);

/// 300 clients each send a 2 MiB body to the echo guest and read the 2 MiB answer at 1 KiB/s.
/// With the defaults, the server's resident memory stays within `OMNIA_MEMORY_BUDGET`: run once
/// with every attacker on one address (its share of the slots, then 503) and once with each on
/// its own (every slot taken until `OMNIA_REQUEST_TIMEOUT` stops the guests).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a 90 s attack: tests/slow runs it"]
async fn slow_readers_keep_memory_within_the_budget() {
    println!(
        "| attackers from | admitted | refused (503) | good requests ok / sent | peak RSS | budget |"
    );
    println!("|---|---|---|---|---|---|");
    for spread in [false, true] {
        let server = Omnia::serve(
            &omnia(),
            &guests::rust("http-echo"),
            &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
        );
        let budget = server.metric("omnia_memory_budget_bytes").await;
        let addr: SocketAddr = server.addr().parse().unwrap();
        let answered = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + ATTACK;
        let attackers: Vec<_> = (0..300u32)
            .map(|i| {
                // 127.0.1.1 for all, or 127.0.1.1 to 127.0.2.44: a client per address.
                let [_, _, hi, lo] = (if spread { i } else { 0 } + 1).to_be_bytes();
                let from = Ipv4Addr::new(127, 0, 1 + hi, lo);
                let (answered, refused) = (Arc::clone(&answered), Arc::clone(&refused));
                tokio::spawn(async move {
                    match slow_reader(from, addr, until).await {
                        Some(StatusCode::OK) => answered.fetch_add(1, Ordering::Relaxed),
                        Some(StatusCode::SERVICE_UNAVAILABLE) => {
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                        other => panic!("attacker {i}: {other:?}"),
                    };
                })
            })
            .collect();
        let (good, sent) = good_requests(&server, until).await;
        for attacker in attackers {
            attacker.await.unwrap();
        }
        // The process's high-water mark: the peak over the whole attack.
        let peak = server.status_kib("VmHWM") << 10;
        println!(
            "| {} | {} | {} | {good} / {sent} | {} MiB | {} MiB |",
            if spread {
                "300 addresses"
            } else {
                "one address"
            },
            answered.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            peak >> 20,
            budget >> 20,
        );
        assert!(peak < budget, "peak RSS {peak} past the budget {budget}");
        if !spread {
            // The one attacker holds its share (half the slots); the good client has the rest.
            assert_eq!(good, sent, "good requests beside one attacker");
        }
    }
}

/// 300 clients, each from its own address, send request bodies as `slowhttptest -B` does (8 KiB
/// declared, 10 bytes every 5 s), reconnecting when cut, for 40 s; a loop of good requests from
/// another address counts how many are served. Cut at `OMNIA_HTTP_BODY_TIMEOUT` alone, the
/// trickles held every slot; cut first when the server is full, they leave room for the rest.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a 40 s attack: tests/slow runs it"]
async fn slow_bodies_leave_room_for_good_requests() {
    let server = Omnia::serve(
        &omnia(),
        &guests::rust("http-echo"),
        &[("OMNIA_ADMIN_ADDR", "127.0.0.1:0")],
    );
    let addr: SocketAddr = server.addr().parse().unwrap();
    let until = Instant::now() + ATTACK;
    let cut = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (1..=300u32)
        .map(|i| {
            let [_, _, hi, lo] = i.to_be_bytes();
            let from = Ipv4Addr::new(127, 0, 1 + hi, lo);
            let cut = Arc::clone(&cut);
            tokio::spawn(async move {
                while Instant::now() < until {
                    if slow_body(from, addr, until).await {
                        cut.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (good, sent) = good_requests(&server, until).await;
    for attacker in attackers {
        attacker.await.unwrap();
    }
    // (A build from before the cut had no such metric.)
    let metrics = get(&server.admin_url("/metrics")).await.unwrap().text();
    let cut_for_room = metrics
        .lines()
        .find_map(|l| l.strip_prefix("omnia_http_body_waits_cut_total "))
        .unwrap_or("none in this build")
        .to_owned();
    println!("| slow bodies answered 408 | cut to make room | good requests ok / sent |");
    println!("|---|---|---|");
    println!(
        "| {} | {cut_for_room} | {good} / {sent} |",
        cut.load(Ordering::Relaxed)
    );
    assert!(
        good * 10 >= sent * 9,
        "good requests {good} / {sent} beside the slow bodies"
    );
}

/// A good request every 100 ms from 127.0.0.1 until `until`: how many were answered 200, and
/// how many were sent.
async fn good_requests(server: &Omnia, until: Instant) -> (u64, u64) {
    let (mut good, mut sent) = (0, 0);
    while Instant::now() < until {
        sent += 1;
        if get(&server.url("/good"))
            .await
            .is_ok_and(|r| r.status == StatusCode::OK)
        {
            good += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (good, sent)
}

/// One slow body from `from` (10 bytes every 5 s of 8 KiB) until `until` or the server answers;
/// `true` if it answered 408.
async fn slow_body(from: Ipv4Addr, to: SocketAddr, until: Instant) -> bool {
    let Some(mut conn) = connect_from(from, to).await else {
        return false;
    };
    let head = "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 8192\r\n\r\n";
    if conn.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = [0; 12];
    while Instant::now() < until {
        tokio::select! {
            read = conn.read_exact(&mut answer) => {
                return read.is_ok() && &answer[9..12] == b"408";
            }
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                if conn.write_all(b"0123456789").await.is_err() {
                    return false;
                }
            }
        }
    }
    false
}

/// A connection to `to` from the loopback address `from`, with a small receive buffer.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.set_recv_buffer_size(4096).ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).ok()?;
    socket.connect(to).await.ok()
}

/// Posts 2 MiB from `from` and reads the answer at 1 KiB/s until `until`; the status line.
async fn slow_reader(from: Ipv4Addr, to: SocketAddr, until: Instant) -> Option<StatusCode> {
    let mut conn = connect_from(from, to).await?;
    let body = vec![b'x'; 2 << 20];
    let head = format!(
        "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.ok()?;
    // A refused request is answered without its body being read: the write may fail or stall.
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.write_all(&body)).await;
    let mut chunk = [0; 1024];
    conn.read_exact(&mut chunk[..12]).await.ok()?;
    let status = std::str::from_utf8(chunk.get(9..12)?).ok()?.parse().ok()?;
    // The rest at 1 KiB/s, until the attack ends or the server ends the response.
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !matches!(conn.read(&mut chunk).await, Ok(n) if n > 0) {
            break;
        }
    }
    StatusCode::from_u16(status).ok()
}
