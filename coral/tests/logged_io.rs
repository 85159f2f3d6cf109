//! Log before write on a real loopback socket with the real WebStone
//! application: no response byte reaches the client before the logger has
//! acknowledged the whole response, what the client receives is exactly what
//! was logged, and pipelined requests are logged with their request ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coral::io::logged_io::{LogFuture, LoggedStream, ReplyLogger};
use coral_core::FourTuple;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

struct Gate {
    logs: Mutex<Vec<(u64, u64, Vec<u8>)>>,
    release: Arc<Semaphore>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            logs: Mutex::new(Vec::new()),
            release: Arc::new(Semaphore::new(0)),
        }
    }
}

impl ReplyLogger for Gate {
    fn log_reply(&self, _t: FourTuple, request_end: u64, offset: u64, bytes: &[u8]) -> LogFuture {
        self.logs
            .lock()
            .unwrap()
            .push((request_end, offset, bytes.to_vec()));
        let sem = self.release.clone();
        Box::pin(async move {
            sem.acquire().await.expect("semaphore").forget();
            Ok(())
        })
    }
}

fn tuple() -> FourTuple {
    FourTuple {
        client_ip: "127.0.0.1".parse().unwrap(),
        client_port: 1,
        server_ip: "127.0.0.1".parse().unwrap(),
        server_port: 2,
    }
}

async fn serve_one(listener: TcpListener, gate: Arc<Gate>) {
    let (sock, _) = listener.accept().await.unwrap();
    let logged = LoggedStream::new(sock, tuple(), gate, 0);
    let cfg = Arc::new(workload::cgi::CgiConfig {
        served_by: "primary".into(),
        ..Default::default()
    });
    let _ = workload::cgi::serve_connection(TokioIo::new(logged), cfg).await;
}

async fn read_available(c: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(wait, c.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[tokio::test]
async fn nothing_is_written_before_the_log_ack() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Gate::default());
    tokio::spawn(serve_one(listener, gate.clone()));
    let mut c = TcpStream::connect(addr).await.unwrap();
    let req = b"GET /cgi-bin/webstone?size=3000 HTTP/1.1\r\nHost: x\r\n\r\n";
    c.write_all(req).await.unwrap();

    // The response is complete and logged, but not acknowledged: nothing may arrive.
    let early = read_available(&mut c, Duration::from_millis(300)).await;
    assert!(
        early.is_empty(),
        "{} bytes arrived before the log ack",
        early.len()
    );
    let (request_end, offset, logged) = gate.logs.lock().unwrap()[0].clone();
    assert_eq!(request_end, req.len() as u64);
    assert_eq!(offset, 0);
    assert!(logged.len() > 3000 && logged.starts_with(b"HTTP/1.1 200"));

    gate.release.add_permits(1);
    let got = read_available(&mut c, Duration::from_millis(300)).await;
    assert_eq!(got, logged, "the client receives exactly the logged bytes");
}

#[tokio::test]
async fn pipelined_requests_are_logged_in_order_with_their_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Gate::default());
    gate.release.add_permits(100);
    tokio::spawn(serve_one(listener, gate.clone()));
    let mut c = TcpStream::connect(addr).await.unwrap();
    let one = b"GET /cgi-bin/webstone?size=100 HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut all = Vec::new();
    for _ in 0..3 {
        all.extend_from_slice(one);
    }
    c.write_all(&all).await.unwrap();
    let got = read_available(&mut c, Duration::from_millis(300)).await;
    let logs = gate.logs.lock().unwrap().clone();
    assert_eq!(logs.len(), 3);
    let mut concat = Vec::new();
    for (i, (request_end, offset, bytes)) in logs.iter().enumerate() {
        assert_eq!(*request_end, (one.len() * (i + 1)) as u64);
        assert_eq!(*offset, concat.len() as u64);
        concat.extend_from_slice(bytes);
    }
    assert_eq!(got, concat);
}
