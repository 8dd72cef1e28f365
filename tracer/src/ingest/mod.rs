//! Ring buffer -> decoded records. A thin edge: no policy, just bytes to typed views and counts.

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::decode::Record;

/// The agent's end of the kernel ring buffer.
pub struct Ingest {
    /// Plain until the first async wait (tests drain without a runtime), then registered with tokio.
    plain: Option<RingBuf<MapData>>,
    registered: Option<AsyncFd<RingBuf<MapData>>>,
    /// Records that did not decode (agent/programs mismatch): counted, never silently dropped.
    pub decode_errors: u64,
    pub records: u64,
}

impl Ingest {
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Ingest {
            plain: Some(ring),
            registered: None,
            decode_errors: 0,
            records: 0,
        }
    }

    fn ring(&mut self) -> Option<&mut RingBuf<MapData>> {
        match (&mut self.plain, &mut self.registered) {
            (Some(r), _) => Some(r),
            (None, Some(a)) => Some(a.get_mut()),
            (None, None) => None,
        }
    }

    /// Hands every record available now to `f`, at most `max` of them; returns how many.
    ///
    /// One record in `sample_every` is timed (see `tracker::stages`): `f` gets its decode time in
    /// nanoseconds, and None for the others.
    pub fn drain(&mut self, max: usize, sample_every: u64, mut f: impl FnMut(Record<'_>, Option<u64>)) -> usize {
        let mut n = 0;
        let mut errors = 0;
        let first = self.records;
        if let Some(ring) = self.ring() {
            while n < max {
                let Some(item) = ring.next() else { break };
                let timed = (first + n as u64 + 1).is_multiple_of(sample_every.max(1));
                let started = timed.then(std::time::Instant::now);
                let decoded = Record::try_from(&*item);
                let decode_ns = started.map(|t| t.elapsed().as_nanos() as u64);
                match decoded {
                    Ok(r) => f(r, decode_ns),
                    Err(e) => {
                        errors += 1;
                        log::debug!("undecodable record: {e}");
                    }
                }
                n += 1;
            }
        }
        self.decode_errors += errors;
        self.records += n as u64;
        n
    }

    /// Waits until the kernel signals new records (inside a tokio runtime).
    pub async fn readable(&mut self) -> std::io::Result<()> {
        if let Some(r) = self.plain.take() {
            // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long as it
            // lives; the AsyncFd owns the RingBuf, so the fd outlives the registration.
            let registered = unsafe { AsyncFd::register_with_interest(r, tokio::io::Interest::READABLE) }
                .map_err(|e| std::io::Error::other(format!("registering the ring buffer: {e}")))?;
            self.registered = Some(registered);
        }
        if let Some(a) = &mut self.registered {
            let mut guard = a.readable_mut().await?;
            guard.clear_ready();
        }
        Ok(())
    }
}
