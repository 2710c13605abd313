use super::*;
use crate::proto::{Decoder, Event};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;

fn read_record(s: &mut UnixStream) -> Option<(RecordType, u16, Vec<u8>)> {
    let mut h = [0u8; 8];
    s.read_exact(&mut h).ok()?;
    let hdr = RecordHeader::from_bytes(&h);
    let mut body = vec![0u8; hdr.body_len()];
    s.read_exact(&mut body).ok()?;
    body.truncate(usize::from(hdr.content_length));
    Some((hdr.rtype, hdr.request_id, body))
}

fn end_record(id: u16) -> Vec<u8> {
    let mut out = RecordHeader::new(RecordType::EndRequest, id, 8).to_bytes().to_vec();
    out.extend_from_slice(&[0; 8]);
    out
}

/// A multiplexing application on `s`: answers each request (at the end of its STDIN)
/// with `size(id)` bytes of STDOUT, in records interleaved with the other requests'
/// (all requests answered at once when `batch` of them have arrived), then END_REQUEST.
/// Reports the ids it was asked to abort.
fn app(mut s: UnixStream, batch: usize, size: fn(u16) -> usize, aborted: mpsc::Sender<u16>) {
    let mut ready = Vec::new();
    loop {
        let Some((t, id, _)) = read_record(&mut s) else { return };
        match t {
            RecordType::Stdin => ready.push(id),
            RecordType::AbortRequest => {
                let _ = aborted.send(id);
                if s.write_all(&end_record(id)).is_err() {
                    return;
                }
            }
            _ => {}
        }
        // (Each request's STDIN is a single empty record here.)
        if ready.len() < batch {
            continue;
        }
        let mut left: HashMap<u16, usize> = ready.drain(..).map(|id| (id, size(id))).collect();
        while !left.is_empty() {
            let ids: Vec<u16> = left.keys().copied().collect();
            for id in ids {
                let n = left[&id].min(10_000);
                let mut out = Vec::new();
                if n > 0 {
                    proto::encode_stream(&mut out, RecordType::Stdout, id, &vec![(id % 251) as u8; n]);
                }
                *left.get_mut(&id).unwrap() -= n;
                if left[&id] == 0 {
                    proto::encode_stream_end(&mut out, RecordType::Stdout, id);
                    out.extend_from_slice(&end_record(id));
                    left.remove(&id);
                }
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }
}

fn request(id: u16) -> Vec<u8> {
    let mut out = Vec::new();
    proto::encode_begin_request(&mut out, id, proto::Role::Responder, true);
    proto::encode_params(&mut out, id, [(b"A".as_slice(), b"1".as_slice())]).unwrap();
    proto::encode_stream_end(&mut out, RecordType::Stdin, id);
    out
}

/// Sends a request on `m` and reads its whole STDOUT.
fn exchange(m: &mut MuxStream) -> Result<Vec<u8>, String> {
    let req = request(m.request_id());
    let mut sent = 0;
    while sent < req.len() {
        sent += m
            .try_write_vectored(&[IoSlice::new(&req[sent..])])
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
    }
    let mut dec = Decoder::new(m.request_id());
    let mut body = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match m.try_read(&mut buf).map_err(|e| e.to_string())? {
            Some(0) => return Err(format!("eof after {} bytes", body.len())),
            Some(n) => {
                let mut data = &buf[..n];
                while !data.is_empty() {
                    let (used, ev) = dec.feed(data).map_err(|e| e.to_string())?;
                    data = &data[used..];
                    match ev {
                        Some(Event::Stdout(d)) => body.extend_from_slice(d),
                        Some(Event::EndRequest { .. }) => return Ok(body),
                        _ => {}
                    }
                }
            }
            None => {
                m.wait(true, false, Duration::from_secs(10)).unwrap();
            }
        }
    }
}

struct Setup {
    pool: Arc<Pool>,
    addr: AppAddr,
    aborted: mpsc::Receiver<u16>,
    /// The application's end (to close it).
    app: Mutex<Option<UnixStream>>,
    /// The connection the first stream opens.
    conn: Arc<Mutex<Option<AppConn>>>,
    max_reqs: u32,
}

impl Setup {
    fn new(max_reqs: u32, batch: usize, size: fn(u16) -> usize) -> Setup {
        let (ours, t) = UnixStream::pair().unwrap();
        let (tx, rx) = mpsc::channel();
        let theirs = Mutex::new(Some(t.try_clone().unwrap()));
        thread::spawn(move || app(t, batch, size, tx));
        Setup {
            pool: Arc::new(Pool::default()),
            addr: AppAddr::Unix(format!("/mux-test/{}", rand_tag()).into()),
            aborted: rx,
            app: theirs,
            conn: Arc::new(Mutex::new(Some(AppConn::from_stream(ours).unwrap()))),
            max_reqs,
        }
    }

    /// A stream on the pool's connection (the first call opens it; later
    /// ones fail rather than open another).
    fn stream(&self) -> Result<MuxStream, crate::gateway::ConnectError> {
        Self::stream_in(&self.pool, &self.addr, self.max_reqs, &self.conn)
    }

    fn stream_in(
        pool: &Pool,
        addr: &AppAddr,
        max: u32,
        conn: &Mutex<Option<AppConn>>,
    ) -> Result<MuxStream, crate::gateway::ConnectError> {
        pool.stream(addr, max, std::env::temp_dir(), || {
            conn.lock()
                .unwrap()
                .take()
                .ok_or(crate::gateway::ConnectError::TimedOut)
        })
    }
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()) << 20
}

// Sixteen requests from sixteen threads share one connection: their records
// interleave, each gets exactly its own response.
#[test]
fn concurrent_requests_share_one_connection() {
    let setup = Setup::new(8, 8, |id| 30_000 + usize::from(id) * 1000);
    // (The first stream opens the connection before the others look for one.)
    let first = setup.stream().unwrap();
    let handles: Vec<_> = (0..7)
        .map(|_| {
            let (pool, addr, conn) = (setup.pool.clone(), setup.addr.clone(), setup.conn.clone());
            thread::spawn(move || {
                let mut m = Setup::stream_in(&pool, &addr, 8, &conn).unwrap();
                let id = m.request_id();
                let body = exchange(&mut m).unwrap();
                (id, body)
            })
        })
        .collect();
    let mut first = first;
    let first_id = first.request_id();
    let mut results = vec![(first_id, exchange(&mut first).unwrap())];
    let mut ids = Vec::new();
    results.extend(handles.into_iter().map(|h| h.join().unwrap()));
    for (id, body) in results {
        assert_eq!(body.len(), 30_000 + usize::from(id) * 1000);
        assert!(
            body.iter().all(|&b| b == (id % 251) as u8),
            "request {id} got another's bytes"
        );
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "distinct request ids");
    assert_eq!(setup.pool.connections(&setup.addr), 1);
}

// A burst of requests finding no connection opens one, not one each (a
// burst used to open a connection per request: up to 6 for 16 requests in
// tests/go_fcgi.rs).
#[test]
fn a_burst_opens_one_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let setup = Setup::new(8, 1, |id| 1_000 + usize::from(id));
    let connects = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (pool, addr, conn) = (setup.pool.clone(), setup.addr.clone(), setup.conn.clone());
            let (connects, barrier) = (connects.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut m = pool
                    .stream(&addr, 8, std::env::temp_dir(), || {
                        connects.fetch_add(1, Ordering::SeqCst);
                        // (A connect takes a moment: the others arrive meanwhile.)
                        thread::sleep(Duration::from_millis(30));
                        conn.lock()
                            .unwrap()
                            .take()
                            .ok_or(crate::gateway::ConnectError::TimedOut)
                    })
                    .map_err(|e| format!("{e:?}"))?;
                let id = m.request_id();
                exchange(&mut m).map(|b| (id, b.len())).map_err(|e| format!("{e:?}"))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    for (id, len) in results.into_iter().flatten() {
        assert_eq!(len, 1_000 + usize::from(id));
    }
    assert_eq!(connects.load(Ordering::SeqCst), 1, "one connect for the burst");
    assert_eq!(setup.pool.connections(&setup.addr), 1);
}

// A request whose reader is slow does not hold up the others: its output is
// spilled to a file and read back whole, in order.
#[test]
fn a_slow_reader_is_spilled_and_does_not_stall_the_others() {
    let setup = Setup::new(0, 2, |id| if id == 1 { 3 << 20 } else { 5_000 });
    let mut slow = setup.stream().unwrap();
    assert_eq!(slow.request_id(), 1);
    let req = request(1);
    slow.try_write_vectored(&[IoSlice::new(&req)]).unwrap();
    // The other request completes while nobody reads the 3 MB.
    let mut fast = setup.stream().unwrap();
    assert_eq!(exchange(&mut fast).unwrap().len(), 5_000);
    // Now the slow one reads everything (more than MEM_LIMIT went to the file).
    let mut dec = Decoder::new(1);
    let mut got = 0usize;
    let mut buf = vec![0u8; 8192];
    'outer: loop {
        match slow.try_read(&mut buf).unwrap() {
            Some(0) => panic!("eof after {got}"),
            Some(n) => {
                let mut data = &buf[..n];
                while !data.is_empty() {
                    let (used, ev) = dec.feed(data).unwrap();
                    data = &data[used..];
                    match ev {
                        Some(Event::Stdout(d)) => {
                            assert!(d.iter().all(|&b| b == 1));
                            got += d.len();
                        }
                        Some(Event::EndRequest { .. }) => break 'outer,
                        _ => {}
                    }
                }
            }
            None => {
                slow.wait(true, false, Duration::from_secs(10)).unwrap();
            }
        }
    }
    assert_eq!(got, 3 << 20);
}

// The application dies: exactly the requests in flight fail (end of stream),
// and the next request needs a new connection.
#[test]
fn an_application_that_dies_fails_the_requests_it_held() {
    let setup = Setup::new(0, usize::MAX, |_| 10);
    let mut a = setup.stream().unwrap();
    let mut b = setup.stream().unwrap();
    for m in [&mut a, &mut b] {
        let req = request(m.request_id());
        m.try_write_vectored(&[IoSlice::new(&req)]).unwrap();
    }
    // The application's end closes.
    let s = setup.app.lock().unwrap().take().unwrap();
    s.shutdown(std::net::Shutdown::Both).unwrap();
    for m in [&mut a, &mut b] {
        m.wait(true, false, Duration::from_secs(5)).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(m.try_read(&mut buf).unwrap(), Some(0));
    }
    assert!(setup.stream().is_err(), "a new connection is needed");
}

// A request dropped before its END_REQUEST is aborted; its id is only given
// out again once the application has ended it.
#[test]
fn an_abandoned_request_is_aborted_and_its_id_kept_until_it_ends() {
    let setup = Setup::new(1, usize::MAX, |_| 10);
    let mut a = setup.stream().unwrap();
    let req = request(a.request_id());
    a.try_write_vectored(&[IoSlice::new(&req)]).unwrap();
    assert!(setup.stream().is_err(), "FCGI_MAX_REQS=1: no second id");
    drop(a);
    assert_eq!(setup.aborted.recv_timeout(Duration::from_secs(5)), Ok(1));
    // The id is free again once the application's END_REQUEST came.
    let start = Instant::now();
    let again = loop {
        if let Ok(s) = setup.stream() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(5) {
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    // (Ids rotate: the next one, never the aborted request's again at once.)
    assert_eq!(again.map(|s| s.request_id()), Some(2));
}

#[test]
fn whole_records_only() {
    let r = request(3);
    assert_eq!(whole_records(&r, 1 << 20), r.len());
    assert_eq!(
        whole_records(&r[..r.len() - 1], 1 << 20),
        r.len() - 8,
        "the last (empty STDIN) is cut"
    );
    assert_eq!(whole_records(&r[..5], 1 << 20), 0);
    // At least one record even past the limit.
    assert_eq!(whole_records(&r, 1), 16);
}
