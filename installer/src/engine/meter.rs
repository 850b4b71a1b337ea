//! Bytes moving to a host, as progress events: a step's streams (an image archive into
//! `ctr images import -`, a bundle blob uploaded) are counted as they are read, and reported at
//! most once a second, then once more when the stream ends, so an operator watching a 40 GB
//! transfer sees it move and a test sees how much went.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_inventory::transfer::UploadSource;

use super::events::{Event, Sink};

/// How often a stream in progress is reported.
const EVERY: Duration = Duration::from_secs(1);

/// Counts the bytes of one transfer and reports them.
pub struct Meter {
    sink: Sink,
    host: String,
    resource: String,
    what: String,
    total: Option<u64>,
    bytes: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Meter {
    /// A meter for `what` (`image docker.io/demo/app:1`) sent by step `resource` to `host`.
    pub fn new(sink: Sink, host: &str, resource: &str, what: String, total: Option<u64>) -> Self {
        Meter {
            sink,
            host: host.to_string(),
            resource: resource.to_string(),
            what,
            total,
            bytes: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// `n` more bytes went (`n == 0`: the stream ended).
    fn add(&self, n: u64) {
        let bytes = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        let due = {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            let due = n == 0 || last.is_none_or(|t| t.elapsed() >= EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            (self.sink)(Event::Transferred {
                host: self.host.clone(),
                resource: self.resource.clone(),
                what: self.what.clone(),
                bytes,
                total: self.total,
                done: n == 0,
            });
        }
    }

    /// Sets where a resumed transfer starts (bytes already on the host count as sent).
    fn start_at(&self, offset: u64) {
        self.bytes.store(offset, Ordering::Relaxed);
    }
}

/// A reader that reports what is read through it to its meter.
pub struct Counting<R> {
    inner: R,
    meter: Arc<Meter>,
    ended: bool,
}

impl<R: Read> Counting<R> {
    /// Counts what `inner` yields on `meter`.
    pub fn new(inner: R, meter: Arc<Meter>) -> Self {
        Counting {
            inner,
            meter,
            ended: false,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.meter.add(n as u64);
        } else if !buf.is_empty() && !self.ended {
            self.ended = true;
            self.meter.add(0);
        }
        Ok(n)
    }
}

/// An upload source whose reads are counted.
pub struct CountedSource<'s> {
    inner: &'s dyn UploadSource,
    meter: Arc<Meter>,
}

impl<'s> CountedSource<'s> {
    /// Counts the reads of `inner` on `meter`.
    pub fn new(inner: &'s dyn UploadSource, meter: Arc<Meter>) -> Self {
        CountedSource { inner, meter }
    }
}

impl UploadSource for CountedSource<'_> {
    fn describe(&self) -> PathBuf {
        self.inner.describe()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn sha256(&self) -> &str {
        self.inner.sha256()
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let r = self.inner.open_at(offset)?;
        self.meter.start_at(offset);
        Ok(Box::new(Counting::new(r, self.meter.clone())))
    }
}

/// `n` bytes as an operator reads them (`12.3 MiB`).
pub fn human(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = n as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_reported_as_it_moves_and_once_when_it_ends() {
        let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
        let s = seen.clone();
        let sink: Sink = Arc::new(move |e| s.lock().unwrap().push(e));
        let meter = Arc::new(Meter::new(
            sink,
            "vm1",
            "images",
            "image docker.io/demo/app:1".into(),
            Some(3 << 20),
        ));
        let data = vec![7u8; 3 << 20];
        let mut r = Counting::new(std::io::Cursor::new(data), meter);
        let mut out = Vec::new();
        std::io::copy(&mut r, &mut out).unwrap();
        assert_eq!(out.len(), 3 << 20);
        let seen = seen.lock().unwrap();
        // The first read reports at once; the rest comes within the same second: one line
        // on the way, one at the end, however many reads.
        assert_eq!(seen.len(), 2, "{seen:?}");
        match seen.last().unwrap() {
            Event::Transferred {
                host,
                resource,
                bytes,
                total,
                done,
                ..
            } => {
                assert_eq!((host.as_str(), resource.as_str()), ("vm1", "images"));
                assert_eq!((*bytes, *total, *done), (3 << 20, Some(3 << 20), true));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        assert_eq!(human(0), "0.0 MiB");
        assert_eq!(human(64 << 20), "64.0 MiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
